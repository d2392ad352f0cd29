// Small enhancements every page may use; everything works without them.
(function () {
  'use strict';

  // "Near me": fill the search form's coordinates from the browser's location.
  var near = document.getElementById('near-me');
  if (near && navigator.geolocation) {
    near.hidden = false;
    near.addEventListener('click', function () {
      var status = document.getElementById('near-me-status');
      status.textContent = 'Finding your location…';
      navigator.geolocation.getCurrentPosition(function (pos) {
        document.getElementById('lat').value = pos.coords.latitude.toFixed(4);
        document.getElementById('lon').value = pos.coords.longitude.toFixed(4);
        var radius = document.getElementById('radius');
        if (radius && !radius.value) radius.value = '100';
        var sort = document.getElementById('sort');
        if (sort) sort.value = 'distance';
        status.textContent = 'Searching near your location.';
        near.form.submit();
      }, function () {
        status.textContent = 'Your location is not available. Enter a ZIP code instead.';
      }, { timeout: 10000, maximumAge: 600000 });
    });
  }

  // Live regions that refresh themselves (the organizer's sales page).
  document.querySelectorAll('[data-refresh-every]').forEach(function (box) {
    var every = Math.max(2, parseInt(box.dataset.refreshEvery, 10) || 5) * 1000;
    function again() {
      if (document.hidden) { setTimeout(again, every); return; }
      fetch(location.href, { headers: { accept: 'text/html' }, cache: 'no-store' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.getElementById(box.id);
          if (fresh) box.innerHTML = fresh.innerHTML;
        })
        .catch(function () {})
        .then(function () { setTimeout(again, every); });
    }
    setTimeout(again, every);
  });

  // The ticket at the door: full screen, and the screen kept awake.
  var full = document.getElementById('fullscreen');
  var door = document.getElementById('door');
  if (full && door && door.requestFullscreen) {
    full.hidden = false;
    full.addEventListener('click', function () {
      door.requestFullscreen().catch(function () {});
      if (navigator.wakeLock) navigator.wakeLock.request('screen').catch(function () {});
    });
  }

  // The event form: more section rows on demand.
  var add = document.getElementById('add-section');
  if (add) {
    add.hidden = false;
    add.addEventListener('click', function () {
      var rows = document.querySelectorAll('[data-section-row]');
      var last = rows[rows.length - 1];
      var n = rows.length + 1;
      var copy = last.cloneNode(true);
      copy.querySelectorAll('label').forEach(function (l) {
        l.htmlFor = l.htmlFor.replace(/-\d+$/, '-' + n);
        l.textContent = l.textContent.replace(/Section \d+/, 'Section ' + n);
      });
      copy.querySelectorAll('input, select').forEach(function (i) {
        i.id = i.id.replace(/-\d+$/, '-' + n);
        if (i.tagName === 'INPUT') i.value = '';
      });
      last.parentNode.insertBefore(copy, add);
      copy.querySelector('input').focus();
    });
  }

  // Forms that must go once (holding seats, paying): a second press does nothing.
  document.querySelectorAll('form[data-once]').forEach(function (f) {
    f.addEventListener('submit', function (ev) {
      if (f.dataset.sent) ev.preventDefault();
      f.dataset.sent = '1';
    });
  });
})();
