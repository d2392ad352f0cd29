// Live status pages. A waiting room follows GET /v1/queue/{id}/events (position, then
// admitted); a booking being paid follows GET /v1/booking/{id}/events until its outcome is
// final. Either way the page then reloads, and the server shows what comes next. Without
// EventSource (or if the stream fails) the page polls by reloading.
(function () {
  'use strict';
  var box = document.querySelector('[data-stream]');
  if (!box) return;
  var url = box.dataset.stream;
  var done = box.dataset.done || location.pathname;
  var position = document.getElementById('queue-position');
  var wait = document.getElementById('queue-wait');
  var status = document.getElementById('booking-status-text');
  var finished = false;

  function finish() {
    if (finished) return;
    finished = true;
    location.assign(done);
  }

  function parse(ev) {
    try { return JSON.parse(ev.data); } catch (e) { return {}; }
  }

  function waitText(secs) {
    if (secs < 60) return 'less than a minute';
    if (secs < 120) return 'about a minute';
    return 'about ' + Math.ceil(secs / 60) + ' minutes';
  }

  function onPosition(ev) {
    var d = parse(ev);
    if (d.status === 'ADMITTED' || d.admissionToken) { finish(); return; }
    if (position && typeof d.position === 'number') {
      position.textContent = 'You are number ' + d.position + ' in the queue.';
    }
    if (wait && typeof d.estimatedWaitSeconds === 'number') {
      wait.textContent = 'Estimated wait: ' + waitText(d.estimatedWaitSeconds) + '.';
    }
  }

  function onBooking(ev) {
    var d = parse(ev);
    var s = d.status || (d.booking && d.booking.status);
    // This page follows a payment in flight: anything but PENDING is its outcome (HOLD again
    // means it was declined; the page it reloads into says so).
    if (s && s !== 'PENDING') { finish(); return; }
    if (d.code || d.title) { finish(); return; }
    if (status && s) status.textContent = 'Status: ' + s.toLowerCase() + '. This page updates by itself.';
  }

  function poll() {
    setTimeout(function () { location.reload(); }, 4000);
  }

  if (!window.EventSource) { poll(); return; }
  var es = new EventSource(url);
  var isQueue = url.indexOf('/v1/queue/') === 0;
  if (isQueue) {
    es.addEventListener('position', onPosition);
    es.addEventListener('status', onPosition);
    ['admitted', 'soldout', 'expired'].forEach(function (n) {
      es.addEventListener(n, function () { es.close(); finish(); });
    });
    es.onmessage = onPosition;
  } else {
    es.addEventListener('status', onBooking);
    es.addEventListener('confirmed', function () { es.close(); finish(); });
    es.addEventListener('problem', function (ev) {
      es.close();
      var d = parse(ev);
      // A declined queued payment leaves the seats held: back to the checkout, saying so.
      if (d.code === 'payment-declined' && box.dataset.checkout) {
        finished = true;
        location.assign(box.dataset.checkout + '?declined=1');
        return;
      }
      finish();
    });
    es.onmessage = onBooking;
  }
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED && !finished) { poll(); }
  };
})();
