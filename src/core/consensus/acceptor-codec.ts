import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';
import { malformed } from '../wire/fields.js';
import type { Ballot } from './ballot.js';
import type { AcceptorState, Proposal } from './acceptor.js';
import { type RegisterState, operationIdBytes, recentWritesKept } from './compare-and-set.js';

/**
 * The on-disk form of one key's acceptor state (house rule 6, docs/ARCHITECTURE.md#house-rules: versioned). Layout, format 1:
 * u8 format, varint epoch, ballot promised, optional proposal accepted, optional proposal committed; a
 * ballot is varint round + string proposer; an optional field is u8 0 (absent) or 1 then the
 * field; a proposal is ballot then a register state (writeRegisterState, also the wire's form).
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
  writeRegisterState(writer, proposal.state);
}

/**
 * A register state, on disk and on the wire alike: varint version, u8 0 (absent) or 1 then the
 * value as length-prefixed bytes, varint count of remembered writes (at most recentWritesKept),
 * then each operation id as length-prefixed bytes of operationIdBytes, newest first.
 */
export function writeRegisterState(writer: ByteWriter, state: RegisterState): void {
  writer.varint(state.version);
  if (state.value === null) writer.u8(0);
  else writer.u8(1).bytes(state.value);
  writer.varint(state.writes.length);
  for (const id of state.writes) writer.bytes(Buffer.from(id, 'hex'));
}

/** Reads what writeRegisterState wrote; a malformed state throws KV_BAD_REQUEST (decodeAcceptorState makes it KV_STORAGE). */
export function readRegisterState(reader: ByteReader): RegisterState {
  const version = reader.varint();
  const flag = reader.u8();
  if (flag > 1) throw malformed(`a register value flag of ${flag}`);
  const value = flag === 1 ? Buffer.from(reader.bytes()) : null;
  const count = reader.varint();
  if (count > recentWritesKept || count > version)
    throw malformed(`a register state of version ${version} remembering ${count} writes (at most ${recentWritesKept})`);
  const writes: string[] = [];
  for (let index = 0; index < count; index++) {
    const id = reader.bytes();
    if (id.length !== operationIdBytes) throw malformed(`an operation id of ${id.length} bytes, not ${operationIdBytes}`);
    writes.push(id.toString('hex'));
  }
  return { version, value, writes };
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
  return { ballot, state: readRegisterState(reader) };
}

/** Decodes what encodeAcceptorState wrote; an unknown format or a malformed record is KV_STORAGE. */
export function decodeAcceptorState(bytes: Uint8Array): AcceptorState {
  try {
    const reader = new ByteReader(bytes);
    const format = reader.u8();
    if (format !== acceptorStateFormat) {
      throw new KvError(
        'KV_STORAGE',
        `acceptor state has format ${format} but this node reads format ${acceptorStateFormat}; run a ringkv version that knows it`,
      );
    }
    const epoch = reader.varint();
    const promised = readBallot(reader);
    const accepted = readProposal(reader);
    const committed = readProposal(reader);
    if (!reader.done()) throw new KvError('KV_STORAGE', 'acceptor state has trailing bytes; the record is corrupt, restore the node from a replica');
    return { epoch, promised, accepted, committed };
  } catch (error) {
    if (error instanceof KvError && error.code === 'KV_STORAGE') throw error;
    throw new KvError(
      'KV_STORAGE',
      `acceptor state is truncated or malformed (${(error as Error).message}); the record is corrupt, restore the node from a replica`,
      { cause: error },
    );
  }
}
