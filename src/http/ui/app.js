const refreshMs = 1000;
const palette = ['#2f6fde', '#e8793a', '#1a9e77', '#c2417d', '#7b61c9', '#9a8a1f', '#1f9bb8', '#d24b4b', '#5b7c2d', '#8c5a3c'];
const svgNamespace = 'http://www.w3.org/2000/svg';

function element(tag, attributes, children) {
  const created = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === 'text') created.textContent = String(value);
    else if (name === 'className') created.className = value;
    else created.setAttribute(name, String(value));
  }
  for (const child of children || []) created.append(child);
  return created;
}

function shape(tag, attributes) {
  const created = document.createElementNS(svgNamespace, tag);
  for (const [name, value] of Object.entries(attributes || {})) created.setAttribute(name, String(value));
  return created;
}

function replaceRows(table, rows) {
  table.querySelector('tbody').replaceChildren(...rows);
}

function cell(text, className) {
  return element('td', { text: text, className: className || '' });
}

function formatBytes(bytes) {
  if (typeof bytes !== 'number') return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? String(value) : value.toFixed(value >= 100 ? 0 : 1)) + ' ' + units[unit];
}

function formatMs(valueMs) {
  if (typeof valueMs !== 'number') return 'n/a';
  if (valueMs < 1) return valueMs.toFixed(2) + ' ms';
  if (valueMs < 100) return valueMs.toFixed(1) + ' ms';
  return Math.round(valueMs) + ' ms';
}

function formatAge(ageMs) {
  if (typeof ageMs !== 'number') return 'n/a';
  const seconds = Math.round(ageMs / 1000);
  if (seconds < 120) return seconds + ' s';
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return minutes + ' min';
  return Math.round(minutes / 60) + ' h';
}

function formatNumber(value) {
  return typeof value === 'number' ? value.toLocaleString('en') : 'n/a';
}

function figure(label, value, testId) {
  const attributes = { className: 'figure' };
  if (testId) attributes['data-testid'] = testId;
  return element('div', attributes, [element('div', { className: 'value', text: value }), element('div', { className: 'label', text: label })]);
}

function colourOf(ids, id) {
  const index = ids.indexOf(id);
  return index < 0 ? '#999' : palette[index % palette.length];
}

function renderHeader(status) {
  const uptimeMs = Date.now() - status.node.startedAtMs;
  document.getElementById('node-name').textContent = status.node.address + ' · node ' + status.node.id + ' · up ' + formatAge(uptimeMs);
  document.title = 'ringkv ' + status.node.address;
}

function renderRequests(requests) {
  document.getElementById('requests-window').textContent =
    '(rate over the last ' + requests.rateSeconds + ' s, latency over the last ' + requests.windowSeconds + ' s)';
  // get, put and delete always have a row (0 until traffic comes); local reads only once there are some.
  const names = ['get', 'put', 'delete'].concat(requests.operations.get_local ? ['get_local'] : []);
  const rows = names.concat(['all']).map((name) => {
    const figures = requests.operations[name] || { ratePerSecond: 0, count: 0, errors: 0 };
    const row = element('tr', { 'data-testid': 'request-row', 'data-operation': name }, [
      cell(name === 'all' ? 'all' : name),
      element('td', { className: 'number', text: figures.ratePerSecond.toFixed(2), 'data-testid': 'rate-' + name }),
      cell(formatMs(figures.latencyMsP50), 'number'),
      cell(formatMs(figures.latencyMsP95), 'number'),
      cell(formatMs(figures.latencyMsP99), 'number'),
      cell(formatMs(figures.latencyMsMax), 'number'),
      cell(formatNumber(figures.errors), 'number'),
      element('td', { className: 'number', text: formatNumber(figures.count), 'data-testid': 'count-' + name }),
    ]);
    return row;
  });
  replaceRows(document.getElementById('requests-table'), rows);

  const chart = document.getElementById('rate-chart');
  const series = requests.perSecond;
  const highest = Math.max(1, ...series);
  const step = 600 / Math.max(1, series.length - 1);
  const points = series.map((value, index) => (index * step).toFixed(1) + ',' + (115 - (value / highest) * 105).toFixed(1));
  chart.replaceChildren(
    shape('polyline', { points: '0,115 ' + points.join(' ') + ' 600,115', fill: '#2f6fde22', stroke: 'none' }),
    shape('polyline', { points: points.join(' '), fill: 'none', stroke: '#2f6fde', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }),
  );
  const label = shape('text', { x: 6, y: 14, 'font-size': 12, fill: '#6b7385' });
  label.textContent = 'peak ' + highest + ' req/s';
  chart.append(label);
}

function renderMembers(status) {
  const scheme = window.location.protocol;
  const rows = status.members.map((member) => {
    const self = member.id === status.node.id;
    const link = element('a', { href: scheme + '//' + member.address + '/ui', text: member.address });
    const address = element('td', {}, [link]);
    if (self) address.append(element('span', { className: 'muted', text: ' (this node)' }));
    return element('tr', { 'data-testid': 'member-row', 'data-status': member.status, 'data-address': member.address }, [
      address,
      cell(member.id),
      element('td', { className: 'status status-' + member.status, text: member.status, 'data-testid': 'member-status' }),
      cell(formatNumber(member.partitionsOwned), 'number'),
      cell(String(member.generation), 'number'),
      cell(typeof member.membership === 'string' ? member.membership : ''),
    ]);
  });
  replaceRows(document.getElementById('members-table'), rows);
}

function addressOf(status, id) {
  const member = status.members.find((candidate) => candidate.id === id);
  return member ? member.address : id;
}

function arcPath(startFraction, endFraction, outer, inner) {
  const point = (fraction, radius) => {
    const angle = fraction * 2 * Math.PI - Math.PI / 2;
    return (radius * Math.cos(angle)).toFixed(3) + ' ' + (radius * Math.sin(angle)).toFixed(3);
  };
  const large = endFraction - startFraction > 0.5 ? 1 : 0;
  return (
    'M ' +
    point(startFraction, outer) +
    ' A ' +
    outer +
    ' ' +
    outer +
    ' 0 ' +
    large +
    ' 1 ' +
    point(endFraction, outer) +
    ' L ' +
    point(endFraction, inner) +
    ' A ' +
    inner +
    ' ' +
    inner +
    ' 0 ' +
    large +
    ' 0 ' +
    point(startFraction, inner) +
    ' Z'
  );
}

function renderRing(status) {
  const chart = document.getElementById('ring-chart');
  const ring = status.ring;
  const note = document.getElementById('ring-note');
  if (!ring || !Array.isArray(ring.owners) || ring.owners.length === 0) {
    chart.replaceChildren();
    replaceRows(document.getElementById('ring-table'), [element('tr', {}, [element('td', { colspan: 4, className: 'muted', text: 'no ring yet' })])]);
    document.getElementById('ring-summary').textContent = '';
    note.textContent = '';
    return;
  }
  const owners = ring.owners;
  const ids = Array.from(new Set(owners)).sort();
  const counts = new Map(ids.map((id) => [id, 0]));
  for (const owner of owners) counts.set(owner, counts.get(owner) + 1);
  // One arc per run of partitions with the same owner; a run is cut at a quarter turn so no arc is ambiguous.
  const arcs = [];
  const quarter = Math.max(1, Math.floor(owners.length / 4));
  let start = 0;
  for (let partition = 1; partition <= owners.length; partition++) {
    if (partition === owners.length || owners[partition] !== owners[start] || partition - start >= quarter) {
      const title = shape('title', {});
      title.textContent = 'partitions ' + start + '–' + (partition - 1) + ': ' + addressOf(status, owners[start]);
      const arc = shape('path', {
        d: arcPath(start / owners.length, partition / owners.length, 100, 62),
        fill: colourOf(ids, owners[start]),
        stroke: '#fff',
        'stroke-width': owners.length > 512 ? 0 : 0.4,
      });
      arc.append(title);
      arcs.push(arc);
      start = partition;
    }
  }
  const centre = shape('text', { x: 0, y: 6, 'text-anchor': 'middle', 'font-size': 18, 'font-weight': 600, fill: '#1d2330' });
  centre.textContent = 'Q=' + owners.length;
  chart.replaceChildren(...arcs, centre);
  document.getElementById('ring-summary').textContent = '(version ' + ring.version + ', ' + ids.length + ' owners)';
  const rows = ids.map((id) => {
    const swatch = element('span', { className: 'swatch' });
    swatch.style.background = colourOf(ids, id);
    return element('tr', { 'data-testid': 'ring-owner', 'data-node': id }, [
      element('td', {}, [swatch]),
      cell(addressOf(status, id)),
      element('td', { className: 'number', text: String(counts.get(id)), 'data-testid': 'ring-partitions' }),
      cell(((100 * counts.get(id)) / owners.length).toFixed(1) + ' %', 'number'),
    ]);
  });
  replaceRows(document.getElementById('ring-table'), rows);
  const moving = Array.isArray(ring.next) ? ring.next.filter((owner, partition) => owner !== owners[partition]).length : 0;
  const handoff = status.handoff && typeof status.handoff === 'object' ? status.handoff : null;
  const handoffText = handoff ? ' Handoff: ' + scalarSummary(handoff) + '.' : '';
  note.textContent = (moving > 0 ? 'Ring change under way: ' + moving + ' partitions moving to new owners.' : '') + handoffText;
}

// A status field's name in words ('transfersDoneForRing' -> 'transfers done for ring'), for the figures no label names yet.
function words(name) {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase();
}

function scalarSummary(object) {
  return Object.entries(object)
    .filter(([, value]) => typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string')
    .map(([name, value]) => words(name) + ' ' + (typeof value === 'number' ? formatNumber(value) : String(value)))
    .join(', ');
}

function renderHints(status) {
  const hints = status.hints || {};
  document
    .getElementById('hint-figures')
    .replaceChildren(
      figure('pending', formatNumber(hints.pending), 'hints-pending'),
      figure('delivered', formatNumber(hints.delivered)),
      figure('expired', formatNumber(hints.expired)),
    );
  const byTarget = Object.entries(hints.byTarget || {}).filter(([, count]) => count > 0);
  const rows =
    byTarget.length === 0
      ? [element('tr', {}, [element('td', { colspan: 2, className: 'muted', text: 'no hints waiting' })])]
      : byTarget.map(([target, count]) => element('tr', {}, [cell(addressOf(status, target)), cell(formatNumber(count), 'number')]));
  replaceRows(document.getElementById('hints-table'), rows);
}

const antiEntropyLabels = {
  exchanges: 'exchanges',
  keysRepaired: 'keys repaired',
  bytesExchanged: 'bytes exchanged',
  tombstonesReaped: 'tombstones reaped',
  tombstonesPending: 'tombstones waiting',
  partitionsTracked: 'partitions tracked',
};

function renderAntiEntropy(status) {
  const target = document.getElementById('anti-entropy-figures');
  const repair = document.getElementById('repair');
  const entropy = status.antiEntropy;
  if (!entropy || typeof entropy !== 'object') {
    target.replaceChildren(figure('anti-entropy', 'n/a', 'anti-entropy-state'));
    repair.replaceChildren();
    return;
  }
  const figures = [];
  if (typeof entropy.enabled === 'boolean') figures.push(figure('state', entropy.enabled ? 'on' : 'off', 'anti-entropy-state'));
  for (const [name, label] of Object.entries(antiEntropyLabels)) {
    if (name in entropy) figures.push(figure(label, name === 'bytesExchanged' ? formatBytes(entropy[name]) : formatNumber(entropy[name])));
  }
  if ('oldestFullExchangeAgeMs' in entropy) {
    figures.push(figure('oldest full exchange', entropy.oldestFullExchangeAgeMs === null ? 'not yet' : formatAge(entropy.oldestFullExchangeAgeMs) + ' ago'));
  }
  if ('lastFullExchangeAgeMs' in entropy && typeof entropy.lastFullExchangeAgeMs === 'number') {
    figures.push(figure('last full exchange', formatAge(entropy.lastFullExchangeAgeMs) + ' ago'));
  } else if (entropy.lastFullExchangeAgeMs && typeof entropy.lastFullExchangeAgeMs === 'object') {
    figures.push(figure('partitions in sync', formatNumber(Object.keys(entropy.lastFullExchangeAgeMs).length)));
  }
  for (const [name, value] of Object.entries(entropy)) {
    const known =
      name in antiEntropyLabels || name === 'enabled' || name === 'oldestFullExchangeAgeMs' || name === 'lastFullExchangeAgeMs' || name === 'repair';
    if (!known && (typeof value === 'number' || typeof value === 'string'))
      figures.push(figure(words(name), typeof value === 'number' ? formatNumber(value) : value));
  }
  target.replaceChildren(...figures);
  const progress = entropy.repair;
  if (progress && typeof progress === 'object' && progress.partitionsTotal > 0) {
    const fraction = Math.min(1, progress.partitionsDone / progress.partitionsTotal);
    const bar = element('div');
    bar.style.width = (100 * fraction).toFixed(1) + '%';
    repair.replaceChildren(
      element('div', {
        className: 'muted',
        text:
          (progress.running ? 'repair running: ' : 'last repair: ') +
          progress.partitionsDone +
          ' of ' +
          progress.partitionsTotal +
          ' partitions, ' +
          formatNumber(progress.keysRepaired) +
          ' keys repaired',
      }),
      element('div', { className: 'progress' }, [bar]),
    );
  } else {
    repair.replaceChildren();
  }
}

function renderStorage(status) {
  const storage = status.storage || {};
  document.getElementById('storage-engine').textContent = storage.engine ? '(' + storage.engine + ')' : '';
  document
    .getElementById('storage-figures')
    .replaceChildren(
      figure('keys', formatNumber(storage.keys), 'storage-keys'),
      figure('on disk (tables)', formatBytes(storage.approximateBytes)),
      figure('manual compactions', formatNumber(storage.compactions)),
    );
  // LevelDB always has levels 0 to 6; it reports only those with files, so the others show as empty.
  const reported = new Map((storage.levels || []).map((level) => [level.level, level]));
  const deepest = Math.max(6, ...reported.keys());
  const largest = Math.max(1, ...(storage.levels || []).map((level) => level.bytes));
  const rows = [];
  for (let level = 0; level <= deepest; level++) {
    const figures = reported.get(level) || { level: level, files: 0, bytes: 0 };
    const bar = element('div', { className: 'bar' });
    bar.style.width = ((100 * figures.bytes) / largest).toFixed(1) + '%';
    if (figures.bytes === 0) bar.style.visibility = 'hidden';
    rows.push(
      element('tr', { 'data-testid': 'storage-level', 'data-level': level, 'data-files': figures.files }, [
        cell('L' + level),
        cell(formatNumber(figures.files), 'number'),
        cell(formatBytes(figures.bytes), 'number'),
        element('td', { className: 'bar-cell' }, [bar]),
      ]),
    );
  }
  replaceRows(document.getElementById('storage-levels'), rows);
}

function setLive(state, text) {
  const pill = document.getElementById('live');
  pill.className = 'pill pill-' + state;
  pill.textContent = text;
}

function render(data) {
  renderHeader(data.status);
  renderRequests(data.requests);
  renderMembers(data.status);
  renderRing(data.status);
  renderHints(data.status);
  renderAntiEntropy(data.status);
  renderStorage(data.status);
  document.getElementById('updated').textContent =
    'updated ' + new Date(data.generatedAtMs).toLocaleTimeString('en-GB') + ' · refreshes every ' + refreshMs / 1000 + ' s';
}

let refreshes = 0;

async function refresh() {
  try {
    const response = await fetch('/ui/data.json', { cache: 'no-store', credentials: 'same-origin' });
    if (!response.ok) {
      let message = 'HTTP ' + response.status;
      try {
        message = (await response.json()).error.code;
      } catch (ignored) {
        // not the JSON error shape: keep the status
      }
      throw new Error(message);
    }
    render(await response.json());
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    setLive('live', 'live');
  } catch (error) {
    setLive('error', 'cannot reach the node: ' + error.message);
  } finally {
    setTimeout(refresh, refreshMs);
  }
}

refresh();
