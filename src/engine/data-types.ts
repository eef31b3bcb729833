import { type DataTypeLimits, type DataTypeUpdate, type DataTypeValue, dataTypeKey, dataTypeValue } from '../core/datatypes/data-type.js';
import type { DataTypeUpdateRequest, PeerReply } from '../core/wire/messages.js';
import type { Clock } from '../ports/clock.js';
import type { Coordinator } from './coordinator.js';
import type { ReadOptions, WriteOptions } from './kv-service.js';
import type { Replica } from './replica.js';

/** A data type update's options: a write's, and the r of the read a remove makes first. */
export type DataTypeWriteOptions = WriteOptions & { readonly r?: ReadOptions['r'] };

/** What the HTTP layer needs for /dt: reads and updates of counters and sets. */
export interface DataTypeService {
  /** A coordinated read of r replicas (with read repair); undefined when the key holds no data type. */
  read(bucket: string, key: string, options: ReadOptions): Promise<DataTypeValue | undefined>;
  /** A coordinated update: applied at one replica, then replicated with w like a write. */
  update(bucket: string, key: string, update: DataTypeUpdate, options: DataTypeWriteOptions): Promise<void>;
}

/** What the node hands its data types. */
export interface DataTypeDependencies {
  readonly coordinator: Coordinator;
  readonly replica: Replica;
  readonly clock: Clock;
  readonly limits: () => DataTypeLimits;
  /** The node's admission control (its in-flight bound). */
  readonly admit: <T>(work: () => Promise<T>) => Promise<T>;
}

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
    const object = await this.deps.replica.updateDataType(request.bucket, request.key, request.update, request.sync, request.base, this.deps.clock.nowMs(), this.deps.limits());
    return { type: 'dt-update-reply', object, durable: request.sync };
  }
}
