/* site analytics: a pageview beacon and a heartbeat while the page is visible */
(function () {
  var q = window.__sa = window.__sa || [];
  function beacon(ev) {
    var img = new Image();
    img.src = '/g/ads/px.gif?e=' + ev + '&p=' + encodeURIComponent(location.pathname) + '&r=' + Math.random();
  }
  beacon('pageview');
  setInterval(function () { if (!document.hidden) { beacon('hb'); } }, 30000);
  q.push = function (ev) { beacon(ev); };
})();
