import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';
import type { Ballot } from './ballot.js';
import type { AcceptorState, Proposal } from './acceptor.js';
import type { RegisterState } from './compare-and-set.js';

/**
 * The on-disk form of one key's acceptor state (house rule 6, docs/ARCHITECTURE.md#house-rules: versioned). Layout, format 1:
 * u8 format, varint epoch, ballot promised, optional proposal accepted, optional proposal committed; a
 * ballot is varint round + string proposer; an optional field is u8 0 (absent) or 1 then the
 * field; a proposal is ballot, varint version, then an optional value as length-prefixed bytes.
 */
export const acceptorStateFormat = 1;

function writeBallot(writer: ByteWriter, ballot: Ballot): void {
  writer.varint(ballot.round).string(ballot.proposer);
}

function writeProposal(writer: ByteWriter, proposal: Proposal | null): void {
  if (proposal === null) {
    writer.u8(0);
    return;
  }
  writer.u8(1);
  writeBallot(writer, proposal.ballot);
  writer.varint(proposal.state.version);
  if (proposal.state.value === null) writer.u8(0);
  else writer.u8(1).bytes(proposal.state.value);
}

/** Encodes one key's acceptor state for storage. */
export function encodeAcceptorState(state: AcceptorState): Buffer {
  const writer = new ByteWriter();
  writer.u8(acceptorStateFormat);
  writer.varint(state.epoch);
  writeBallot(writer, state.promised);
  writeProposal(writer, state.accepted);
  writeProposal(writer, state.committed);
  return writer.finish();
}

function readFlag(reader: ByteReader): boolean {
  const flag = reader.u8();
  if (flag > 1) throw new KvError('KV_STORAGE', `acceptor state has a presence flag of ${flag}; the record is corrupt, restore the node from a replica`);
  return flag === 1;
}

function readBallot(reader: ByteReader): Ballot {
  return { round: reader.varint(), proposer: reader.string() };
}

function readProposal(reader: ByteReader): Proposal | null {
  if (!readFlag(reader)) return null;
  const ballot = readBallot(reader);
  const version = reader.varint();
  const value = readFlag(reader) ? Uint8Array.from(reader.bytes()) : null;
  const state: RegisterState = { version, value };
  return { ballot, state };
}

/** Decodes what encodeAcceptorState wrote; an unknown format or a malformed record is KV_STORAGE. */
export function decodeAcceptorState(bytes: Uint8Array): AcceptorState {
  try {
    const reader = new ByteReader(bytes);
    const format = reader.u8();
    if (format !== acceptorStateFormat) {
      throw new KvError('KV_STORAGE', `acceptor state has format ${format} but this node reads format ${acceptorStateFormat}; run a ringkv version that knows it`);
    }
    const epoch = reader.varint();
    const promised = readBallot(reader);
    const accepted = readProposal(reader);
    const committed = readProposal(reader);
    if (!reader.done()) throw new KvError('KV_STORAGE', 'acceptor state has trailing bytes; the record is corrupt, restore the node from a replica');
    return { epoch, promised, accepted, committed };
  } catch (error) {
    if (error instanceof KvError && error.code === 'KV_STORAGE') throw error;
    throw new KvError('KV_STORAGE', `acceptor state is truncated or malformed (${(error as Error).message}); the record is corrupt, restore the node from a replica`, { cause: error });
  }
}
