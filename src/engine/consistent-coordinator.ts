import type { AcceptorReply, AcceptorRequest } from '../core/consensus/acceptor.js';
import { type Ballot, type BallotIssuer, issueBallot, proposerIdentity, startBallotIssuer } from '../core/consensus/ballot.js';
import type { BrokenVariant } from '../core/consensus/broken-variants.js';
import { type OperationResult, type RegisterOperation, type RegisterState, operationId } from '../core/consensus/compare-and-set.js';
import { type ProposerEffect, type ProposerEvent, startProposer, stepProposer } from '../core/consensus/proposer.js';
import { replicaGroups } from '../core/consensus/replica-groups.js';
import { encodeDataKey, partitionOf } from '../core/keys.js';
import type { Ring } from '../core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { BucketProperties } from '../config/schema.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { Random } from '../ports/random.js';
import { KvError } from '../util/errors.js';
import { OperationDrain } from './operation-drain.js';

/** What the consistent coordinator needs from its node, handed to it rather than imported (no cycle). */
export interface ConsistentCoordinatorOptions {
  readonly selfId: string;
  /** This start's generation: with a random draw it makes the proposer identity unique to this process. */
  readonly generation: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly requireRing: () => Ring;
  readonly bucketProperties: (bucket: string) => BucketProperties;
  readonly send: (node: string, request: PeerRequest, timeoutMs: number) => Promise<PeerReply>;
  /** Called with the states of a key a round decided and reports (the watches' log), before its commits are sent. */
  readonly onDecided: (bucket: string, key: string, states: readonly RegisterState[]) => void;
  /** A deliberately broken proposer, for the simulation tests only. */
  readonly brokenProposer?: BrokenVariant;
}

/**
 * The largest back-off before the first retry of a ballot that lost a race; the n-th waits up to
 * n times it. Small against the request timeout, so contention costs a few retries, not the deadline.
 */
export const consistentBackoffMs = 20;

/** Keys whose newest ballot round this node remembers (so its next ballot on them starts above it); cleared when full. */
const rememberedRoundsLimit = 16_384;

/**
 * Runs one linearizable operation on a key of a consistent bucket (docs/CONSENSUS.md): the pure
 * proposer of src/core/consensus/proposer.ts fed with acceptor answers, unreachable peers, the
 * back-off timer and the deadline, over the key's replica groups (its N primaries, and during a
 * ring change the planned ones too): never fallbacks, never hints. One ballot issuer per process.
 */
export class ConsistentCoordinator {
  private issuer: BallotIssuer;
  /** The newest round seen per key (its data key as latin1), so a ballot on a key other nodes write starts above theirs. */
  private readonly newestRounds = new Map<string, number>();
  /** Operations run so far: with the proposer identity, each operation's id (operationId). */
  private operations = 0;
  /** The operations under way (each settles by its deadline at the latest), and the refusal of new ones once closed. */
  private readonly drain = new OperationDrain(
    () =>
      new KvError('KV_NOT_READY', 'this node is leaving the cluster (or has left) and takes no consistent operations; send the request to another member', {
        retryAfterSeconds: 1,
        details: { applied: 'no' },
      }),
  );

  constructor(private readonly options: ConsistentCoordinatorOptions) {
    this.issuer = startBallotIssuer(proposerIdentity(options.selfId, options.generation, options.random.int(2 ** 30).toString(36)));
  }

  /**
   * Stops taking operations (each later `run` is refused with 503 KV_NOT_READY, applied "no") and
   * resolves once those under way have settled: decided, failed or timed out, so by their
   * deadline at the latest. A leaving node awaits it before it marks itself left, so every
   * version it decided is in its watch log before any watcher can see it gone
   * (docs/CONSENSUS.md, "Watches"). It stays closed: the node is about to stop.
   */
  async close(): Promise<void> {
    await this.drain.close();
  }

  /** Runs `operation` on the key within `timeoutMs`; resolves with its result, rejects with the proposer's KvError. */
  async run(bucket: string, key: string, operation: RegisterOperation, timeoutMs: number): Promise<OperationResult> {
    return this.drain.run(async () => this.propose(bucket, key, operation, timeoutMs));
  }

  /** One operation's rounds: the proposer's effects carried out until it replies or fails. */
  private async propose(bucket: string, key: string, operation: RegisterOperation, timeoutMs: number): Promise<OperationResult> {
    const ring = this.options.requireRing();
    const properties = this.options.bucketProperties(bucket);
    const groups = replicaGroups(ring, partitionOf(bucket, key, ring.partitionCount), properties.nVal);
    const roundKey = encodeDataKey(bucket, key).toString('latin1');
    const { clock } = this.options;
    const deadlineAtMs = clock.nowMs() + timeoutMs;
    return new Promise<OperationResult>((resolve, reject) => {
      this.operations += 1;
      const broken = this.options.brokenProposer;
      const config = {
        groups,
        epoch: ring.version,
        timeoutMs,
        backoffMs: consistentBackoffMs,
        operationId: operationId(this.issuer.proposer, this.operations),
        ...(broken === undefined ? {} : { broken }),
      };
      let state = startProposer(config, operation);
      const timers: TimerHandle[] = [];
      const feed = (event: ProposerEvent): void => {
        const [next, effects] = stepProposer(state, event);
        state = next;
        for (const effect of effects) perform(effect);
      };
      const settle = (): void => {
        for (const timer of timers) timer.cancel();
      };
      const perform = (effect: ProposerEffect): void => {
        switch (effect.type) {
          case 'arm-deadline':
            timers.push(clock.setTimer(Math.max(0, effect.atMs - clock.nowMs()), () => feed({ type: 'deadline' })));
            return;
          case 'send':
            this.sendToAcceptor(effect.to, bucket, key, effect.request, Math.max(1, deadlineAtMs - clock.nowMs())).then(
              (reply) => {
                if (reply === null) return;
                this.remember(roundKey, reply);
                feed({ type: 'answer', from: effect.to, reply });
              },
              () => {
                if (effect.request.type !== 'commit') feed({ type: 'unreachable', from: effect.to, ballot: ballotOf(effect.request) });
              },
            );
            return;
          case 'decided':
            this.options.onDecided(bucket, key, effect.states);
            return;
          case 'back-off': {
            const ballot = this.nextBallot(roundKey, effect.atLeastRound);
            timers.push(clock.setTimer(1 + this.options.random.int(Math.max(1, effect.maxDelayMs)), () => feed({ type: 'retry', ballot })));
            return;
          }
          case 'reply':
            settle();
            resolve(effect.result);
            return;
          case 'fail':
            settle();
            reject(effect.error);
            return;
        }
      };
      feed({ type: 'start', nowMs: clock.nowMs(), ballot: this.nextBallot(roundKey, 1) });
    });
  }

  /** A ballot above every round this node saw for the key and above `atLeastRound`. */
  private nextBallot(roundKey: string, atLeastRound: number): Ballot {
    const [issuer, ballot] = issueBallot(this.issuer, Math.max(atLeastRound, (this.newestRounds.get(roundKey) ?? 0) + 1));
    this.issuer = issuer;
    return ballot;
  }

  /** Remembers the newest round an acceptor's answer names for the key. */
  private remember(roundKey: string, reply: AcceptorReply): void {
    const rounds = [reply.ballot.round];
    if (reply.type === 'promise') rounds.push(reply.accepted?.ballot.round ?? 0, reply.committed?.ballot.round ?? 0);
    if (reply.type === 'prepare-rejected' || reply.type === 'propose-rejected') rounds.push(reply.promised.round);
    const newest = Math.max(...rounds);
    if (newest <= (this.newestRounds.get(roundKey) ?? 0)) return;
    if (this.newestRounds.size >= rememberedRoundsLimit) this.newestRounds.clear();
    this.newestRounds.set(roundKey, newest);
  }

  /** One acceptor request as a peer message; the answer (null for a commit), or a rejection when the peer could not serve it. */
  private async sendToAcceptor(node: string, bucket: string, key: string, request: AcceptorRequest, timeoutMs: number): Promise<AcceptorReply | null> {
    const message: PeerRequest =
      request.type === 'prepare'
        ? { type: 'paxos-prepare', bucket, key, epoch: request.epoch, ballot: request.ballot }
        : request.type === 'propose'
          ? { type: 'paxos-propose', bucket, key, epoch: request.epoch, proposal: request.proposal }
          : { type: 'paxos-commit', bucket, key, proposal: request.proposal };
    const reply = await this.options.send(node, message, timeoutMs);
    if (reply.type !== 'paxos-reply') throw new KvError('KV_PEER_UNREACHABLE', `node ${node} answered ${reply.type} to ${message.type}`);
    return reply.reply;
  }
}

/** The ballot a prepare or proposal was sent under. */
function ballotOf(request: AcceptorRequest): Ballot {
  return request.type === 'prepare' ? request.ballot : request.proposal.ballot;
}
