/*! slipplayer 2.3.1 | (c) PitLane Live | HLS loader with the network behaviour of hls.js:
 *  XHR for playlists (master, then a variant, reloaded every target duration) and segments.
 *  It does not decode: it drives the <video> poster and a status line, which is all the
 *  gallery's pages need a player for. jwplayer() and Clappr.Player() wrap it. */
(function (w, d) {
  'use strict';

  function absolute(base, rel) { return new URL(rel, base).href; }

  function request(url, type, opts, done) {
    var x = new XMLHttpRequest();
    x.open('GET', url, true);
    x.responseType = type;
    if (opts.withCredentials) { x.withCredentials = true; }
    var h = opts.headers || {};
    for (var k in h) { if (Object.prototype.hasOwnProperty.call(h, k)) { x.setRequestHeader(k, h[k]); } }
    x.onload = function () { done(x.status >= 200 && x.status < 300 ? null : 'HTTP ' + x.status, x); };
    x.onerror = function () { done('network error', x); };
    x.send();
  }

  function parse(text) {
    var lines = text.split(/\r?\n/), out = { variants: [], segments: [], target: 6, ended: false };
    for (var i = 0; i < lines.length; i++) {
      var l = lines[i].trim();
      if (l.indexOf('#EXT-X-STREAM-INF') === 0) {
        var bw = /BANDWIDTH=(\d+)/.exec(l);
        while (++i < lines.length && (!lines[i].trim() || lines[i].charAt(0) === '#')) { /* skip */ }
        out.variants.push({ bandwidth: bw ? +bw[1] : 0, uri: (lines[i] || '').trim() });
      } else if (l.indexOf('#EXT-X-TARGETDURATION:') === 0) {
        out.target = parseFloat(l.split(':')[1]) || 6;
      } else if (l === '#EXT-X-ENDLIST') {
        out.ended = true;
      } else if (l && l.charAt(0) !== '#') {
        out.segments.push(l);
      }
    }
    return out;
  }

  function SlipPlayer(video, opts) {
    this.video = typeof video === 'string' ? d.getElementById(video) : video;
    this.opts = opts || {};
    this.timer = null;
    this.loaded = {};
    this.queue = [];
  }

  SlipPlayer.prototype.status = function (text) {
    if (!this.video) { return; }
    this.video.setAttribute('data-state', text);
    var s = this.video.parentNode && this.video.parentNode.querySelector('.sp-status');
    if (s) { s.textContent = text; }
  };

  SlipPlayer.prototype.fail = function (why) {
    this.status('error: ' + why);
    if (this.opts.onError) { this.opts.onError(why); }
  };

  SlipPlayer.prototype.playlist = function (urls) {
    this.queue = urls.slice(1);
    this.load(urls[0]);
  };

  SlipPlayer.prototype.load = function (url) {
    var self = this;
    clearTimeout(self.timer);
    self.status('loading');
    request(url, 'text', self.opts, function (err, x) {
      if (err) { return self.fail(err); }
      var text = x.responseText, base = x.responseURL || url;
      if (text.indexOf('#EXTM3U') !== 0) { return self.fail('not a playlist'); }
      var p = parse(text);
      if (p.variants.length) {
        p.variants.sort(function (a, b) { return b.bandwidth - a.bandwidth; });
        return self.media(absolute(base, p.variants[0].uri));
      }
      self.media(base, p);
    });
  };

  SlipPlayer.prototype.media = function (url, parsed) {
    var self = this;
    function use(p, base) {
      var fresh = p.segments.filter(function (s) { return !self.loaded[absolute(base, s)]; });
      var next = p.ended ? fresh.slice(0, 3) : fresh.slice(-2);
      next.forEach(function (s) {
        var u = absolute(base, s);
        self.loaded[u] = true;
        request(u, 'arraybuffer', self.opts, function (err) { if (err) { self.fail(err); } });
      });
      if (p.ended) {
        self.status('ended');
        if (self.queue.length) { return self.load(self.queue.shift()); }
        return;
      }
      self.status('live');
      self.timer = setTimeout(function () { self.media(url); }, p.target * 1000);
    }
    if (parsed) { return use(parsed, url); }
    request(url, 'text', self.opts, function (err, x) {
      if (err) { return self.fail(err); }
      use(parse(x.responseText), x.responseURL || url);
    });
  };

  /** Play the <source> children of a <video> (or its data-src), the first one first. */
  SlipPlayer.attach = function (video, opts) {
    var v = typeof video === 'string' ? d.getElementById(video) : video;
    var urls = [].map.call(v.querySelectorAll('source'), function (s) { return s.src; });
    if (!urls.length && v.getAttribute('data-src')) { urls = [absolute(d.baseURI, v.getAttribute('data-src'))]; }
    var p = new SlipPlayer(v, opts);
    p.playlist(urls);
    return p;
  };

  function mount(id) {
    var el = d.getElementById(String(id).replace(/^#/, ''));
    if (el && el.tagName !== 'VIDEO') {
      var v = d.createElement('video');
      v.setAttribute('playsinline', '');
      v.muted = true;
      v.style.width = '100%';
      el.appendChild(v);
      var s = d.createElement('div');
      s.className = 'sp-status';
      el.appendChild(s);
      return v;
    }
    return el;
  }

  /** jwplayer(id).setup({file | sources | playlist, ...}) */
  w.jwplayer = function (id) {
    return {
      setup: function (cfg) {
        var items = cfg.playlist || [cfg];
        var urls = items.map(function (it) {
          var src = (it.sources && it.sources[0]) || it;
          return absolute(d.baseURI, src.file);
        });
        var p = new SlipPlayer(mount(id), { withCredentials: !!cfg.withCredentials });
        if (cfg.image) { p.video.poster = cfg.image; }
        if (cfg.autostart !== false) { p.playlist(urls); }
        return p;
      }
    };
  };

  /** new Clappr.Player({source, parentId, autoPlay, ...}) */
  w.Clappr = {
    Player: function (cfg) {
      var p = new SlipPlayer(mount(cfg.parentId), {});
      if (cfg.poster) { p.video.poster = cfg.poster; }
      p.playlist([absolute(d.baseURI, cfg.source)]);
      return p;
    }
  };

  w.SlipPlayer = SlipPlayer;
})(window, document);
