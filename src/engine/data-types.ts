import { type DataTypeLimits, type DataTypeUpdate, type DataTypeValue, dataTypeKey, dataTypeValue } from '../core/datatypes/data-type.js';
import type { DataTypeUpdateRequest, PeerReply } from '../core/wire/messages.js';
import type { Coordinator } from './coordinator.js';
import type { DataTypeService, DataTypeWriteOptions, ReadOptions } from './kv-service.js';
import type { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';

/** What the node hands its data types. */
export type DataTypeDependencies = Pick<NodeContext, 'clock'> & {
  readonly coordinator: Coordinator;
  readonly replica: Replica;
  readonly limits: () => DataTypeLimits;
  /** The node's admission control (its in-flight bound). */
  readonly admit: <T>(work: () => Promise<T>) => Promise<T>;
};

/**
 * One node's data types (src/core/datatypes/): /dt reads and updates, coordinated over the key's
 * replicas in the data type namespace, and the dt-update peer request a coordinating replica serves.
 */
export class DataTypes implements DataTypeService {
  constructor(private readonly deps: DataTypeDependencies) {}

  async read(bucket: string, key: string, options: ReadOptions): Promise<DataTypeValue | undefined> {
    return this.deps.admit(async () => dataTypeValue(await this.deps.coordinator.read(bucket, dataTypeKey(key), options)));
  }

  async update(bucket: string, key: string, update: DataTypeUpdate, options: DataTypeWriteOptions): Promise<void> {
    await this.deps.admit(async () => this.deps.coordinator.updateDataType(bucket, dataTypeKey(key), options, update));
  }

  /** Serves dt-update: this replica applies the update and answers the state it stored. */
  async handleUpdate(request: DataTypeUpdateRequest): Promise<PeerReply> {
    const object = await this.deps.replica.updateDataType(
      request.bucket,
      request.key,
      request.update,
      request.sync,
      request.base,
      this.deps.clock.nowMs(),
      this.deps.limits(),
    );
    return { type: 'dt-update-reply', object, durable: request.sync };
  }
}
