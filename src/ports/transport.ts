import type { PeerReply, PeerRequest } from '../core/wire/messages.js';

/** Where a peer listens: 'host:port'. */
export type PeerAddress = string;

/** Sends requests to peers. Every call has a timeout; a failure rejects (KvError KV_PEER_UNREACHABLE or KV_TIMEOUT). */
export interface Transport {
  request(target: PeerAddress, message: PeerRequest, options: { readonly timeoutMs: number }): Promise<PeerReply>;
  close(): Promise<void>;
}

/** What a node does with a request from a peer. */
export type PeerHandler = (message: PeerRequest) => Promise<PeerReply>;
