// The hold countdown, driven by the server's expiresAt (corrected for the difference between
// this device's clock and the server's), with a warning near the end; and a Pay button that
// submits once. The form carries one Idempotency-Key for this checkout, so even a second
// submission could never charge twice.
(function () {
  'use strict';
  var timer = document.getElementById('countdown');
  var warning = document.getElementById('countdown-warning');
  var form = document.getElementById('pay-form');
  var pay = document.getElementById('pay-button');

  if (form) {
    form.addEventListener('submit', function (ev) {
      if (form.dataset.sent) { ev.preventDefault(); return; }
      form.dataset.sent = '1';
      if (pay) {
        pay.setAttribute('aria-disabled', 'true');
        pay.classList.add('busy');
        pay.textContent = 'Paying…';
      }
    });
  }

  if (!timer) return;
  var expires = Date.parse(timer.dataset.expiresAt);
  var serverNow = Date.parse(timer.dataset.serverNow);
  if (isNaN(expires) || isNaN(serverNow)) return;
  var skew = serverNow - Date.now();
  var initial = expires - serverNow;
  var warnAt = Math.min(60000, initial / 2);
  var warned = false;

  function text(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var m = Math.floor(s / 60);
    return m + ':' + (s % 60 < 10 ? '0' : '') + (s % 60);
  }

  function expired() {
    timer.textContent = '0:00';
    timer.classList.add('expired');
    if (warning) {
      warning.setAttribute('role', 'alert');
      warning.textContent = 'Your hold has expired. These seats went back on sale and you were not charged.';
    }
    if (pay) {
      pay.disabled = true;
      pay.textContent = 'Pay';
    }
    var again = document.getElementById('choose-again');
    if (again) again.hidden = false;
  }

  function tick() {
    var left = expires - (Date.now() + skew);
    if (left <= 0) { expired(); return; }
    timer.textContent = text(left);
    if (!warned && left <= warnAt) {
      warned = true;
      timer.classList.add('warning');
      if (warning) {
        var secs = Math.ceil(left / 1000);
        warning.textContent = secs >= 60 ? 'Less than a minute left to pay.' :
          'Only ' + secs + ' seconds left to pay.';
      }
    }
    setTimeout(tick, 250);
  }
  tick();
})();
