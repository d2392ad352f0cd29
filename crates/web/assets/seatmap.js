// The seat map: an SVG drawn from /events/{id}/seatmap.json (one status letter per seat).
// Small venues show every seat at once; large ones (a 50,000-seat stadium) show one block per
// section and draw a section's seats only when it is opened, so the page stays quick. Each
// seat is a toggle button named like "Floor, row A, seat 10, $250.00, available"; picks
// become hidden inputs of the hold form, which the server sends to POST /v1/attempt.
(function () {
  'use strict';
  var root = document.getElementById('seatmap');
  if (!root) return;
  var form = document.getElementById('hold-form');
  var inputs = document.getElementById('seat-picks-inputs');
  var summary = document.getElementById('selection-summary');
  var best = document.getElementById('best-available');
  var currency = root.dataset.currency || 'USD';
  var max = parseInt(root.dataset.max, 10) || 8;
  var SVG = 'http://www.w3.org/2000/svg';
  var PITCH = 10;        // seat spacing, in SVG units
  var SMALL = 3000;      // up to this many seats, every seat is drawn at once
  var money;
  try {
    money = new Intl.NumberFormat('en-US', { style: 'currency', currency: currency });
  } catch (e) {
    money = { format: function (v) { return v.toFixed(2) + ' ' + currency; } };
  }
  var WORDS = { O: 'available', H: 'held', P: 'held', S: 'sold', R: 'resale' };

  var data = null;
  var layout = [];       // per section: {s, x, y, w, h}
  var seatEls = new Map(); // seatId -> element (drawn seats only)
  var picked = new Map();  // seatId -> {label, cents, listing}
  var svg = null;
  var backButton = null;
  var current = null;    // the section opened, in overview mode
  var overview = false;

  function price(cents) { return money.format(cents / 100); }

  function el(name, attrs) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  function seatId(s, row, number) { return s.no + '-' + row + '-' + number; }

  function seatInfo(s, row, number, letter) {
    var id = seatId(s, row, number);
    var cents = s.price;
    var listing = null;
    if (letter === 'R' && data.resale[id]) {
      cents = data.resale[id][0];
      listing = data.resale[id][1];
    }
    var label = s.name + ', row ' + row + ', seat ' + number;
    return { id: id, cents: cents, listing: listing, label: label,
             name: label + ', ' + price(cents) + ', ' + WORDS[letter] };
  }

  function load() {
    performance.mark('seatmap-fetch-start');
    return fetch(root.dataset.src, { headers: { accept: 'application/json' }, cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('seat map ' + r.status);
        return r.json();
      });
  }

  function computeLayout() {
    var seated = data.sections;
    var total = 0, widest = 0;
    seated.forEach(function (s) {
      var cols = 0;
      s.rows.forEach(function (r) { cols = Math.max(cols, r[1] - 1 + r[2].length); });
      s.cols = s.kind === 'seated' ? cols : 16;
      s.nrows = s.kind === 'seated' ? s.rows.length : 4;
      total += s.cols * s.nrows;
      widest = Math.max(widest, s.cols);
    });
    var target = Math.max(widest, Math.ceil(Math.sqrt(total) * 2.2)) * PITCH;
    var x = 0, shelf = 0, gap = 4 * PITCH;
    var y = Math.max(22, target / 40) + 2 * PITCH;
    var shelves = [[]];
    layout = seated.map(function (s) {
      var w = s.cols * PITCH;
      var top = overview ? Math.max(2 * PITCH, Math.round(w / 12 * 1.4)) : 2 * PITCH;
      var h = s.nrows * PITCH + top;
      if (x > 0 && x + w > target) { x = 0; y += shelf + gap; shelf = 0; shelves.push([]); }
      var box = { s: s, x: x, y: y, w: w, h: h, top: top };
      shelves[shelves.length - 1].push(box);
      x += w + gap;
      shelf = Math.max(shelf, h);
      return box;
    });
    // Each shelf centred under the stage.
    shelves.forEach(function (row) {
      if (!row.length) return;
      var last = row[row.length - 1];
      var shift = Math.max(0, (target - (last.x + last.w)) / 2);
      row.forEach(function (b) { b.x += shift; });
    });
    var width = Math.max(target, 200);
    return { width: width, height: y + shelf + PITCH, total: total };
  }

  function build() {
    var seatsTotal = 0;
    data.sections.forEach(function (s) { if (s.kind === 'seated') seatsTotal += s.capacity; });
    overview = seatsTotal > SMALL;
    var dims = computeLayout();
    root.textContent = '';
    backButton = document.createElement('button');
    backButton.type = 'button';
    backButton.className = 'back';
    backButton.textContent = 'Back to all sections';
    backButton.hidden = true;
    backButton.addEventListener('click', function () { showOverview(true); });
    root.appendChild(backButton);
    svg = el('svg', { viewBox: '0 0 ' + dims.width + ' ' + dims.height, role: 'group',
                      'aria-label': 'Seat map', 'class': 'map', preserveAspectRatio: 'xMidYMin meet' });
    // About 3 px per seat pitch on screen, never wider than the page.
    svg.setAttribute('width', Math.round(dims.width * 3));
    svg.dataset.w = dims.width;
    svg.dataset.h = dims.height;
    root.appendChild(svg);
    svg.addEventListener('click', onClick);
    svg.addEventListener('keydown', onKey);
    showOverview(false);
    if (!overview) focusFirstSeat();
  }

  function stage(width) {
    var g = el('g', { 'aria-hidden': 'true' });
    var h = Math.max(22, width / 40);
    g.appendChild(el('rect', { x: width * 0.3, y: 0, width: width * 0.4, height: h, rx: 4, 'class': 'stage' }));
    var t = el('text', { x: width / 2, y: h * 0.68, 'text-anchor': 'middle', 'class': 'stage-label',
                         'font-size': h * 0.45 });
    t.textContent = 'Stage';
    g.appendChild(t);
    return g;
  }

  function showOverview(focusBlock) {
    var prev = current;
    current = null;
    seatEls.clear();
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var w = +svg.dataset.w, h = +svg.dataset.h;
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.appendChild(stage(w));
    backButton.hidden = true;
    layout.forEach(function (box) {
      if (box.s.kind !== 'seated') { svg.appendChild(gaBlock(box)); return; }
      if (overview) svg.appendChild(sectionBlock(box));
      else svg.appendChild(drawSeats(box));
    });
    if (focusBlock && prev) {
      var b = svg.querySelector('[data-section="' + prev.s.no + '"]');
      if (b) b.focus();
    }
    markPicked();
  }

  // Text scales with what it labels: seat-sized in a seat grid, block-sized on an overview.
  function fontFor(box) { return overview && !current ? Math.max(9, Math.round(box.w / 12)) : 9; }

  function label(box, text, extra) {
    var t = el('text', { x: box.x, y: box.y + box.top * 0.72, 'class': 'section-label' + (extra || ''),
                         'font-size': fontFor(box) });
    t.textContent = text;
    return t;
  }

  // Section blocks are named by what they show ("Section 101 · $45.00 2,345 left"), so the
  // visible text and the accessible name never disagree.
  function sectionBlock(box) {
    var s = box.s;
    var ratio = s.capacity ? s.available / s.capacity : 0;
    var g = el('g', { role: 'button', tabindex: '0', 'class': 'block', 'data-section': s.no });
    g.appendChild(label(box, s.name + ' · ' + price(s.price)));
    g.appendChild(el('rect', { x: box.x, y: box.y + box.top, width: box.w, height: box.h - box.top, rx: 8,
      'class': 'block-fill ' + (ratio === 0 ? 'none' : ratio < 0.1 ? 'few' : 'many') }));
    var t = el('text', { x: box.x + box.w / 2, y: box.y + box.top + (box.h - box.top) / 2, 'text-anchor': 'middle',
      'class': 'block-count', 'font-size': fontFor(box) });
    t.textContent = s.available.toLocaleString('en-US') + ' seats left';
    g.appendChild(t);
    return g;
  }

  function gaBlock(box) {
    var s = box.s;
    var g = el('g', { role: 'button', tabindex: '0', 'class': 'block ga', 'data-ga': s.name });
    g.appendChild(label(box, s.name + ' · ' + price(s.price) + ' · standing'));
    g.appendChild(el('rect', { x: box.x, y: box.y + box.top, width: box.w, height: box.h - box.top, rx: 8,
      'class': 'block-fill ' + (s.available === 0 ? 'none' : 'many') }));
    var t = el('text', { x: box.x + box.w / 2, y: box.y + box.top + (box.h - box.top) / 2 + 4,
      'text-anchor': 'middle', 'class': 'block-count', 'font-size': Math.min(fontFor(box), 10) });
    t.textContent = s.available.toLocaleString('en-US') + ' places left';
    g.appendChild(t);
    return g;
  }

  function drawSeats(box) {
    var s = box.s;
    var g = el('g', { role: 'group', 'aria-label': s.name + ', ' + price(s.price), 'data-sec': s.no });
    g.appendChild(label(box, s.name + ' · ' + price(s.price)));
    var frag = document.createDocumentFragment();
    s.rows.forEach(function (r, ri) {
      var row = r[0], first = r[1], line = r[2];
      for (var i = 0; i < line.length; i++) {
        var letter = line.charAt(i);
        if (letter === 'X') continue;
        var n = first + i;
        var info = seatInfo(s, row, n, letter);
        var free = letter === 'O' || letter === 'R';
        var e = el('rect', {
          x: box.x + (n - 1) * PITCH + 1, y: box.y + box.top + ri * PITCH + 1,
          width: PITCH - 2, height: PITCH - 2, rx: 2,
          'class': 'seat s-' + letter, role: 'button', tabindex: '-1',
          'aria-label': info.name, 'aria-pressed': 'false', 'data-id': info.id,
          'data-r': ri, 'data-c': n - 1, 'data-s': s.no
        });
        if (!free) e.setAttribute('aria-disabled', 'true');
        seatEls.set(info.id, e);
        frag.appendChild(e);
      }
    });
    g.appendChild(frag);
    return g;
  }

  function openSection(no) {
    var box = layout.find(function (b) { return b.s.no === no; });
    if (!box) return;
    performance.mark('section-open-start');
    current = box;
    seatEls.clear();
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.appendChild(drawSeats(box));
    var pad = 2 * PITCH;
    svg.setAttribute('viewBox', (box.x - pad) + ' ' + (box.y - pad) + ' ' + (box.w + 2 * pad) + ' ' + (box.h + 2 * pad));
    backButton.hidden = false;
    markPicked();
    focusFirstSeat();
    performance.mark('section-open-end');
    announce('Showing the seats of ' + box.s.name + '. ' + box.s.available + ' available.');
  }

  function focusFirstSeat() {
    var first = svg.querySelector('.seat.s-O, .seat.s-R') || svg.querySelector('.seat');
    if (first) {
      first.setAttribute('tabindex', '0');
      if (current) first.focus();
    }
  }

  function markPicked() {
    picked.forEach(function (_, id) {
      var e = seatEls.get(id);
      if (e) { e.setAttribute('aria-pressed', 'true'); e.classList.add('picked'); }
    });
  }

  function announce(text) {
    if (summary) summary.textContent = text;
  }

  function toggle(e) {
    var id = e.getAttribute('data-id');
    if (e.getAttribute('aria-disabled') === 'true') {
      announce('That seat is taken. Pick another one.');
      return;
    }
    if (picked.has(id)) {
      picked.delete(id);
      e.setAttribute('aria-pressed', 'false');
      e.classList.remove('picked');
    } else {
      var s = data.sections.find(function (x) { return x.no === +e.getAttribute('data-s'); });
      var m = /^\d+-([A-Z]+)-(\d+)$/.exec(id);
      var letter = (e.getAttribute('class').match(/s-([A-Z])/) || [])[1];
      var info = seatInfo(s, m[1], +m[2], letter);
      var isResale = !!info.listing;
      var mixed = false;
      picked.forEach(function (p) { if (!!p.listing !== isResale) mixed = true; });
      if (mixed) {
        clearPicks();
        announce('New seats and resale tickets are bought separately, so your earlier picks were cleared.');
      }
      if (picked.size >= max) {
        announce('You can pick at most ' + max + ' seats.');
        return;
      }
      picked.set(id, info);
      e.setAttribute('aria-pressed', 'true');
      e.classList.add('picked');
    }
    sync();
  }

  function clearPicks() {
    picked.forEach(function (_, id) {
      var x = seatEls.get(id);
      if (x) { x.setAttribute('aria-pressed', 'false'); x.classList.remove('picked'); }
    });
    picked.clear();
  }

  function sync() {
    inputs.textContent = '';
    var total = 0, names = [];
    picked.forEach(function (p, id) {
      var i = document.createElement('input');
      i.type = 'hidden';
      i.name = p.listing ? 'listing' : 'seat';
      i.value = p.listing || id;
      inputs.appendChild(i);
      total += p.cents;
      names.push(p.label);
    });
    if (best) best.disabled = picked.size > 0;
    if (picked.size === 0) announce('No seats picked.');
    else announce(picked.size + (picked.size === 1 ? ' seat' : ' seats') + ' picked: ' +
      names.join('; ') + '. Total ' + price(total) + '.');
  }

  function onClick(ev) {
    var t = ev.target.closest('[data-id], [data-section], [data-ga]');
    if (!t) return;
    if (t.hasAttribute('data-id')) toggle(t);
    else if (t.hasAttribute('data-section')) openSection(+t.getAttribute('data-section'));
    else chooseGa(t.getAttribute('data-ga'));
  }

  function chooseGa(name) {
    var sel = document.getElementById('hold-section');
    var qty = document.getElementById('hold-quantity');
    if (sel) sel.value = name;
    clearPicks();
    sync();
    if (qty) qty.focus();
    announce(name + ' chosen: pick how many places, then Hold seats.');
  }

  function move(e, dr, dc) {
    var r = +e.getAttribute('data-r') + dr, c = +e.getAttribute('data-c') + dc, s = e.getAttribute('data-s');
    var next = svg.querySelector('[data-s="' + s + '"][data-r="' + r + '"][data-c="' + c + '"]');
    if (!next && dc !== 0) {
      // Off the end of a row: into the neighbouring section, when several are drawn.
      var groups = Array.prototype.slice.call(svg.querySelectorAll('g[data-sec]'));
      var i = groups.findIndex(function (g) { return g.getAttribute('data-sec') === s; });
      var g = groups[i + (dc > 0 ? 1 : -1)];
      if (g) next = dc > 0 ? g.querySelector('.seat') : g.querySelector('.seat:last-of-type');
    }
    if (next) {
      e.setAttribute('tabindex', '-1');
      next.setAttribute('tabindex', '0');
      next.focus();
    }
  }

  function onKey(ev) {
    var t = ev.target;
    if (ev.key === 'Enter' || ev.key === ' ') {
      if (t.hasAttribute('data-id') || t.hasAttribute('data-section') || t.hasAttribute('data-ga')) {
        ev.preventDefault();
        onClick({ target: t });
      }
      return;
    }
    if (ev.key === 'Escape' && current) { ev.preventDefault(); showOverview(true); return; }
    if (!t.hasAttribute('data-id')) return;
    var d = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[ev.key];
    if (d) { ev.preventDefault(); move(t, d[0], d[1]); }
  }

  // Availability changes in place (picks stay): from the live stream
  // (GET /v1/events/{id}/seats/events) while it runs, else by re-reading the map.
  var LETTER = { OPEN: 'O', HOLD: 'H', PENDING: 'P', SOLD: 'S', RESALE: 'R' };

  function paint(id) {
    var e = seatEls.get(id);
    if (!e) return;
    var m = /^(\d+)-([A-Z]+)-(\d+)$/.exec(id);
    var s = data.sections.find(function (x) { return x.no === +m[1]; });
    var row = s && s.rows.find(function (r) { return r[0] === m[2]; });
    if (!row) return;
    var letter = row[2].charAt(+m[3] - row[1]);
    var info = seatInfo(s, m[2], +m[3], letter);
    var cls = 'seat s-' + letter + (picked.has(id) ? ' picked' : '');
    if (e.getAttribute('class') !== cls) {
      e.setAttribute('class', cls);
      e.setAttribute('aria-label', info.name);
      if (letter === 'O' || letter === 'R') e.removeAttribute('aria-disabled');
      else e.setAttribute('aria-disabled', 'true');
    }
  }

  function paintCounts() {
    if (!overview || current) return;
    svg.querySelectorAll('[data-section]').forEach(function (g) {
      var s = data.sections.find(function (x) { return x.no === +g.getAttribute('data-section'); });
      var t = g.querySelector('.block-count');
      if (s && t) t.textContent = s.available.toLocaleString('en-US') + ' seats left';
    });
  }

  function refresh() {
    return load().then(function (d) {
      data = d;
      var byNo = {};
      d.sections.forEach(function (s) { byNo[s.no] = s; });
      layout.forEach(function (box) {
        var fresh = byNo[box.s.no];
        if (fresh) { fresh.cols = box.s.cols; fresh.nrows = box.s.nrows; box.s = fresh; }
      });
      seatEls.forEach(function (_, id) { paint(id); });
      paintCounts();
    }).catch(function () { /* keep what is shown */ });
  }

  function onSeats(ev) {
    var u;
    try { u = JSON.parse(ev.data); } catch (e) { return; }
    var needMap = false;
    (u.seats || []).forEach(function (c) {
      var letter = LETTER[c.status];
      var m = /^(\d+)-([A-Z]+)-(\d+)$/.exec(c.seatId || '');
      if (!letter || !m) return;
      if (letter === 'R') { needMap = true; return; } // a new listing: its price comes with the map
      var s = data.sections.find(function (x) { return x.no === +m[1]; });
      var row = s && s.rows.find(function (r) { return r[0] === m[2]; });
      if (!row) return;
      var i = +m[3] - row[1];
      row[2] = row[2].slice(0, i) + letter + row[2].slice(i + 1);
      paint(c.seatId);
    });
    (u.sections || []).forEach(function (c) {
      var s = data.sections.find(function (x) { return x.name === c.section; });
      if (s) { s.available = c.available; s.held = c.held; s.sold = c.sold; }
    });
    paintCounts();
    if (needMap) refresh();
  }

  function live() {
    var polling = null;
    function poll() {
      if (!polling) polling = setInterval(function () { if (!document.hidden) refresh(); }, 10000);
    }
    if (!window.EventSource || !root.dataset.stream) { poll(); return; }
    var es = new EventSource(root.dataset.stream);
    es.addEventListener('seats', onSeats);
    es.addEventListener('open', function () {
      if (polling) { clearInterval(polling); polling = null; }
    });
    es.onerror = function () {
      // The browser reconnects by itself; meanwhile (or if it gives up) read the map.
      poll();
      if (es.readyState !== EventSource.CLOSED) refresh();
    };
  }

  if (form) {
    form.addEventListener('submit', function (ev) {
      if (form.dataset.sent) { ev.preventDefault(); return; }
      form.dataset.sent = '1';
    });
  }

  load().then(function (d) {
    data = d;
    build();
    performance.mark('seatmap-ready');
    root.dataset.ready = '1';
    live();
  }).catch(function () {
    root.textContent = 'The seat map could not be loaded. You can still get the best available seats below.';
  });
})();
