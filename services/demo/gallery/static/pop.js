/* popunder v4 | zone config in window.atOptions / window._pop */
(function () {
  var cfg = window._pop || { url: '/g/ads/landing', every: 3600 };
  var key = 'pu_last', fired = false;
  function due() {
    try { return !localStorage[key] || Date.now() - +localStorage[key] > cfg.every * 1000; }
    catch (e) { return true; }
  }
  document.addEventListener('click', function () {
    if (fired || !due()) { return; }
    fired = true;
    try { localStorage[key] = Date.now(); } catch (e) { /* private mode */ }
    var w = window.open(cfg.url + '?z=' + (cfg.zone || 0), '_blank');
    if (w) { w.blur(); window.focus(); }
  }, true);
})();
