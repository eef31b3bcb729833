/**
 * The package entry point (`import { RingClient } from 'ringkv'`): the client library and its types.
 */
export {
  type Consistency,
  type DataTypeClient,
  type DataTypeReadOptions,
  type DataTypeWriteOptions,
  type SetUpdate,
  type SetValue,
  type MergedValue,
  type Quorum,
  type ReadRequestOptions,
  type ReadResult,
  type RequestOutcome,
  type ListRequestOptions,
  type ResolveOptions,
  RingClient,
  RingClientError,
  type RingClientOptions,
  type RingClientTlsOptions,
  type StoredValue,
  type WatchDot,
  type WatchEvent,
  type WatchOptions,
  type WatchTarget,
  type WriteRequestOptions,
  type WriteResult,
} from './ring-client.js';
