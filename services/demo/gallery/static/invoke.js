/* display ads: writes the banner iframe for window.atOptions where the script tag is */
(function () {
  var o = window.atOptions || { key: '0', width: 728, height: 90 };
  document.write('<iframe src="/g/ads/banner?key=' + encodeURIComponent(o.key) + '&w=' + o.width +
    '&h=' + o.height + '" width="' + o.width + '" height="' + o.height +
    '" frameborder="0" scrolling="no" style="border:0;max-width:100%"></iframe>');
})();
