/*
 * statecast wall display: one shared EventSource on /events, one card per
 * topic, sorted by topic, each showing the latest data and how long ago it
 * changed.
 *
 * Stream contract (see apiserver): `update` {topic,seq,ts,data} and `delete`
 * {topic,seq,ts} carry `id: <epoch>-<seq>`; `sync` {seq,epoch,full} says "you
 * now have the full picture". full:true is a fresh full state, so cards not
 * received on this connection are gone; full:false is an exact resume.
 * EventSource resumes with Last-Event-ID by itself; when it gives up (non-200,
 * e.g. 503 at the stream limit) we open a new one with ?lastEventId=.
 *
 * Data from the stream only ever reaches the DOM through textContent and
 * attributes, never as markup. No inline styles or scripts, so a strict CSP
 * works; element.style / CSS variables are set through the CSSOM.
 */
'use strict';

(() => {
  const STALE_AFTER_MS = 8000;      /* disconnected this long: data may be old */
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const MAX_KV_ROWS = 8;            /* objects up to this many keys: key/value rows */
  const MAX_SCALAR_CHARS = 24;      /* longer strings are shown as text, not big */
  const MAX_JSON_CHARS = 4000;      /* pretty-printed values are clipped to this */
  const MAX_COMPACT_CHARS = 48;     /* shorter JSON is shown on one line, centred */

  const $ = (id) => document.getElementById(id);
  const grid = $('grid');
  const empty = $('empty');
  const conn = $('conn');
  const connLabel = $('conn-label');
  const countEl = $('count');
  const clock = $('clock');
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'variant' });

  /* topic -> { el, valueEl, agoEl, epoch, seq, ts, gen } */
  const cards = new Map();

  const topics = new URLSearchParams(location.search).getAll('topic').filter((t) => t !== '');
  let es = null;
  let gen = 0;            /* bumped on every stream open; cards remember the one they came on */
  let lastId = '';
  let synced = false;     /* a sync arrived at least once since the page loaded */
  let state = '';
  let staleTimer = 0;
  let retryTimer = 0;
  let retryDelay = RETRY_MIN_MS;

  /* ---- connection ---------------------------------------------------- */

  function eventsUrl() {
    const url = new URL('events', location.href);
    url.search = '';
    url.hash = '';
    for (const t of topics) url.searchParams.append('topic', t);
    if (lastId) url.searchParams.set('lastEventId', lastId);
    return url.href;
  }

  function setState(next) {
    if (next === state) return;
    state = next;
    conn.dataset.conn = next;
    connLabel.textContent = next;
    document.body.classList.toggle('is-stale', next === 'stale');
    if (next === 'live') {
      clearTimeout(staleTimer);
      staleTimer = 0;
    } else if (next !== 'stale' && !staleTimer) {
      staleTimer = setTimeout(() => { staleTimer = 0; setState('stale'); }, STALE_AFTER_MS);
    }
  }

  function connect() {
    retryTimer = 0;
    es = new EventSource(eventsUrl());
    es.addEventListener('open', onOpen);
    es.addEventListener('error', onError);
    es.addEventListener('update', onUpdate);
    es.addEventListener('delete', onDelete);
    es.addEventListener('sync', onSync);
  }

  function onOpen() {
    gen++;
  }

  function onError() {
    if (es.readyState === EventSource.CLOSED) {
      /* The browser gave up (HTTP error or wrong type): retry ourselves with
       * backoff and jitter so a wall of displays does not return at once. */
      es.close();
      if (!retryTimer) {
        const delay = retryDelay * (0.5 + Math.random());
        retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
        retryTimer = setTimeout(connect, delay);
      }
    }
    if (state !== 'stale') setState(state === 'connecting' ? 'connecting' : 'reconnecting');
  }

  function onSync(ev) {
    const msg = parse(ev);
    if (msg === null) return;
    if (msg.full === true) {
      for (const [topic, card] of cards) {
        if (card.gen !== gen) removeCard(topic);
      }
    }
    retryDelay = RETRY_MIN_MS;
    synced = true;
    setState('live');
    scheduleLayout();
  }

  function parse(ev) {
    try {
      const msg = JSON.parse(ev.data);
      return msg !== null && typeof msg === 'object' ? msg : null;
    } catch (e) {
      console.warn('statecast: bad event data', e);
      return null;
    }
  }

  /* "<epoch>-<seq>"; the epoch itself may contain dashes. */
  function epochOf(id) {
    const i = id.lastIndexOf('-');
    return i > 0 ? id.slice(0, i) : '';
  }

  /* An event older than what the card shows (same epoch) is a duplicate. */
  function isOld(card, epoch, seq) {
    return card !== undefined && epoch !== '' && card.epoch === epoch && typeof seq === 'number' &&
      seq <= card.seq;
  }

  function onUpdate(ev) {
    const msg = parse(ev);
    if (ev.lastEventId) lastId = ev.lastEventId;
    if (msg === null || typeof msg.topic !== 'string') return;
    const epoch = epochOf(ev.lastEventId || '');
    let card = cards.get(msg.topic);
    if (isOld(card, epoch, msg.seq)) {
      card.gen = gen;
      return;
    }
    /* New cards of the first full picture appear quietly; later ones flash. */
    const quiet = card === undefined && !synced;
    if (card === undefined) card = addCard(msg.topic);
    card.epoch = epoch;
    card.seq = typeof msg.seq === 'number' ? msg.seq : 0;
    card.ts = typeof msg.ts === 'number' ? msg.ts : Date.now();
    card.gen = gen;
    card.el.dataset.seq = String(card.seq);
    card.agoEl.dateTime = new Date(card.ts).toISOString();
    renderValue(card.valueEl, msg.data);
    renderAgo(card, Date.now());
    if (!quiet) flash(card.el);
  }

  function onDelete(ev) {
    const msg = parse(ev);
    if (ev.lastEventId) lastId = ev.lastEventId;
    if (msg === null || typeof msg.topic !== 'string') return;
    const card = cards.get(msg.topic);
    if (card === undefined || isOld(card, epochOf(ev.lastEventId || ''), msg.seq)) return;
    removeCard(msg.topic);
  }

  /* ---- cards --------------------------------------------------------- */

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function addCard(topic) {
    const article = el('article', 'card');
    article.dataset.topic = topic;
    const head = el('header', 'card-head');
    const name = el('h2', 'topic', topic);
    name.title = topic;
    const ago = el('time', 'ago');
    head.append(name, ago);
    const value = el('div', 'value');
    value.dataset.value = '';
    article.append(head, value);

    const card = { el: article, valueEl: value, agoEl: ago, epoch: '', seq: -1, ts: 0, gen };
    /* The grid is kept sorted: insert before the first larger topic. */
    let before = null;
    for (const child of grid.children) {
      if (collator.compare(child.dataset.topic, topic) > 0) {
        before = child;
        break;
      }
    }
    grid.insertBefore(article, before);
    cards.set(topic, card);
    scheduleLayout();
    return card;
  }

  function removeCard(topic) {
    const card = cards.get(topic);
    if (card === undefined) return;
    card.el.remove();
    cards.delete(topic);
    scheduleLayout();
  }

  function flash(node) {
    node.classList.remove('flash');
    void node.offsetWidth; /* restart the animation */
    node.classList.add('flash');
  }

  function isScalar(v) {
    return v === null || typeof v !== 'object';
  }

  function formatScalar(v) {
    if (v === null) return 'null';
    if (typeof v === 'number') {
      if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
      if (Math.abs(v) >= 1) return String(Math.round(v * 1000) / 1000);
      return String(Number(v.toPrecision(4)));
    }
    return String(v);
  }

  function scalarKind(v) {
    return v === null ? 'null' : typeof v;
  }

  function clipJson(v, indent) {
    let s;
    try {
      s = JSON.stringify(v, null, indent);
    } catch (e) {
      s = String(v);
    }
    if (s === undefined) s = String(v);
    return s.length > MAX_JSON_CHARS ? s.slice(0, MAX_JSON_CHARS) + '\n…' : s;
  }

  /* Pick the most readable form: one big scalar; a labelled scalar for
   * {"value": x}-like objects with one field; key/value rows for small flat
   * objects; short JSON on one line; otherwise pretty-printed JSON, clipped. */
  function renderValue(node, data) {
    node.replaceChildren();
    node.removeAttribute('title');
    let kind;
    if (isScalar(data) && !(typeof data === 'string' && data.length > MAX_SCALAR_CHARS)) {
      kind = 'scalar';
      const s = el('span', 'scalar is-' + scalarKind(data), formatScalar(data));
      node.title = typeof data === 'string' ? data : JSON.stringify(data);
      node.append(s);
      fitText(node, s.textContent.length);
    } else if (typeof data === 'string') {
      kind = 'text';
      node.append(el('p', 'text', data.length > MAX_JSON_CHARS ? data.slice(0, MAX_JSON_CHARS) + '…' : data));
    } else if (!Array.isArray(data) && Object.keys(data).length === 1 && isScalar(Object.values(data)[0]) &&
               formatScalar(Object.values(data)[0]).length <= MAX_SCALAR_CHARS) {
      kind = 'scalar';
      const [k, v] = Object.entries(data)[0];
      const s = el('span', 'scalar is-' + scalarKind(v), formatScalar(v));
      node.title = k + ': ' + JSON.stringify(v);
      node.append(s, el('span', 'label', k));
      fitText(node, s.textContent.length);
    } else if (!Array.isArray(data) && Object.keys(data).length > 0 && Object.keys(data).length <= MAX_KV_ROWS) {
      kind = 'kv';
      const dl = el('dl', 'kv');
      for (const [k, v] of Object.entries(data)) {
        const row = el('div', 'row');
        const dd = el('dd', isScalar(v) ? 'is-' + scalarKind(v) : 'is-json', isScalar(v) ? formatScalar(v) : clipJson(v));
        dd.title = isScalar(v) ? String(v) : clipJson(v);
        row.append(el('dt', '', k), dd);
        row.dataset.key = k;
        dl.append(row);
      }
      node.append(dl);
      node.style.setProperty('--kv-rows', String(Object.keys(data).length));
    } else if (clipJson(data).length <= MAX_COMPACT_CHARS) {
      kind = 'compact';
      node.append(el('p', 'compact', clipJson(data)));
    } else {
      kind = 'json';
      node.append(el('pre', 'json', clipJson(data, 2)));
    }
    node.dataset.kind = kind;
  }

  /* Scale big scalars by their length so "21.5" fills the card and
   * "1234567890" still fits (CSS multiplies this with the card size). */
  function fitText(node, chars) {
    node.style.setProperty('--chars', String(Math.max(chars, 3)));
  }

  /* ---- time ---------------------------------------------------------- */

  function ago(ms) {
    const s = Math.floor(ms / 1000);
    if (s < 1) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function renderAgo(card, now) {
    const text = ago(Math.max(0, now - card.ts));
    if (card.agoEl.textContent !== text) card.agoEl.textContent = text;
  }

  function tick() {
    const now = Date.now();
    for (const card of cards.values()) renderAgo(card, now);
    const d = new Date(now);
    clock.textContent = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0') + ':' +
      String(d.getSeconds()).padStart(2, '0');
  }

  /* ---- layout -------------------------------------------------------- */

  /* Many cards arrive at once on connect: lay out once per frame. */
  let layoutPending = false;
  function scheduleLayout() {
    if (layoutPending) return;
    layoutPending = true;
    requestAnimationFrame(() => {
      layoutPending = false;
      layout();
    });
  }

  /* Choose columns so every card gets the biggest box of roughly 16:10 that
   * fits the screen; past a minimum card height the grid scrolls instead. */
  function layout() {
    const n = cards.size;
    empty.hidden = n > 0;
    if (n === 0) {
      empty.textContent = !synced ? 'Waiting for topics…'
        : topics.length > 0 ? 'No topic matches ' + topics.join(', ') : 'No topics yet';
    }
    countEl.textContent = n === 1 ? '1 topic' : n + ' topics';
    if (n === 0) return;
    const w = grid.clientWidth;
    const h = grid.clientHeight;
    if (w === 0 || h === 0) return;
    const gap = parseFloat(getComputedStyle(grid).columnGap) || 0;
    let best = 1;
    let bestSize = -1;
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const cw = (w - gap * (cols - 1)) / cols;
      const ch = (h - gap * (rows - 1)) / rows;
      const size = Math.min(cw / 1.6, ch);
      if (size > bestSize) {
        bestSize = size;
        best = cols;
      }
    }
    grid.style.setProperty('--cols', String(best));
    grid.style.setProperty('--rows', String(Math.ceil(n / best)));
  }

  function showFilter() {
    const list = $('filters');
    for (const t of topics) list.append(el('li', 'chip', t));
    if (topics.length > 0) document.title = 'statecast · ' + topics.join(', ');
  }

  showFilter();
  setState('connecting');
  layout();
  tick();
  setInterval(tick, 1000);
  window.addEventListener('resize', scheduleLayout);
  connect();
})();
