/** Plain-text tables of /status for `ringkv status` and `ringkv ring`. */

interface StatusShape {
  node?: { id?: string; address?: string };
  members?: { id: string; address: string; status: string; partitionsOwned?: number; host?: string; zone?: string; membership?: string }[];
  partitionCount?: number;
  storage?: { keys?: number; approximateBytes?: number; levels?: { level: number; files: number; bytes: number }[] };
  hints?: { pending?: number; byTarget?: Record<string, number> };
  ring?: { version: number; owners: string[]; members: string[] } | null;
  placement?: { warnings?: string[] };
}

/** Lays rows out in aligned columns. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** Prints members with status, partitions owned and hints waiting for them. */
export function printStatus(raw: unknown): void {
  const status = raw as StatusShape;
  const self = status.node?.id;
  const rows = (status.members ?? []).map((member) => [
    member.id + (member.id === self ? ' *' : ''),
    member.address,
    member.status,
    member.host ?? member.id,
    member.zone ?? '-',
    String(member.partitionsOwned ?? 0),
    String(status.hints?.byTarget?.[member.id] ?? 0),
    member.membership ?? '-',
  ]);
  console.log(`node ${self} at ${status.node?.address} (* = this node), ring of ${status.partitionCount} partitions, version ${status.ring?.version ?? '-'}`);
  console.log(formatTable(['id', 'address', 'status', 'host', 'zone', 'partitions', 'hints here for it', 'swim'], rows));
  for (const warning of status.placement?.warnings ?? []) console.log(`placement warning: ${warning}`);
  const levels = (status.storage?.levels ?? []).filter((level) => level.files > 0);
  console.log(
    `\nthis node: ${status.storage?.keys ?? 0} keys, ${status.hints?.pending ?? 0} pending hints, ~${status.storage?.approximateBytes ?? 0} bytes; ` +
      `LevelDB ${levels.map((level) => `L${level.level}: ${level.files} files/${level.bytes} B`).join(', ') || 'no SSTables yet'}`,
  );
}

/** Prints each partition's owner, a row per run of partitions with the same owner. */
export function printRing(raw: unknown): void {
  const status = raw as StatusShape;
  const ring = status.ring;
  if (ring === null || ring === undefined) {
    console.log('this node has no ring yet');
    return;
  }
  const addresses = new Map((status.members ?? []).map((member) => [member.id, member.address]));
  const rows: string[][] = [];
  let start = 0;
  ring.owners.forEach((owner, partition) => {
    const next = ring.owners[partition + 1];
    if (next === owner) return;
    rows.push([start === partition ? String(partition) : `${start}-${partition}`, owner, addresses.get(owner) ?? '?']);
    start = partition + 1;
  });
  console.log(`ring version ${ring.version}: ${ring.owners.length} partitions over ${ring.members.length} nodes`);
  const counts = ring.members.map((member) => `${member} (${addresses.get(member) ?? '?'}): ${ring.owners.filter((owner) => owner === member).length}`);
  console.log(`partitions per node: ${counts.join(', ')}\n`);
  console.log(formatTable(['partitions', 'owner', 'address'], rows));
}
