"""The gallery's HTML: pages shaped like real live-sport embed sites (site chrome, a player,
ad and analytics scripts, a chat widget, noise), each hiding its stream one way.

Pure functions of the URLs and tokens the routes mint; nothing here knows about requests.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from typing import Final

from services.demo.gallery.packer import pack
from services.demo.gallery.registry import PATTERNS, PREFIX

_STYLE: Final = (
    "*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,sans-serif;background:#0d0f14;"
    "color:#e6e6e6}a{color:#ff6b35;text-decoration:none}header{display:flex;gap:1.5rem;"
    "align-items:center;padding:.7rem 1.2rem;background:#151922;border-bottom:2px solid #e10600}"
    "header b{font-size:1.2rem;letter-spacing:.04em}nav a{margin-right:1rem;color:#ccc}"
    ".wrap{display:grid;grid-template-columns:minmax(0,1fr) 300px;gap:1rem;padding:1rem 1.2rem}"
    ".player{position:relative;background:#000;aspect-ratio:16/9}.player video,.player iframe"
    "{width:100%;height:100%;border:0}.live{background:#e10600;color:#fff;padding:0 .4rem;"
    "border-radius:3px;font-weight:700;margin-right:.4rem}.servers button{background:#222;"
    "color:#ddd;border:1px solid #333;padding:.3rem .8rem;margin:.5rem .3rem 0 0;cursor:pointer}"
    ".ad{margin:.8rem 0;text-align:center}.sp-status{position:absolute;left:.5rem;bottom:.4rem;"
    "font-size:12px;color:#9f9}aside iframe{width:100%;height:420px;border:1px solid #222}"
    "footer{padding:1rem 1.2rem;color:#777;font-size:12px}#cookie{position:fixed;bottom:0;left:0;"
    "right:0;background:#222;padding:.6rem 1.2rem}table{width:100%;border-collapse:collapse}"
    "td{padding:.2rem .4rem;border-bottom:1px solid #222}"
)

_SCHEDULE: Final = (
    "<table><tr><td>FP1</td><td>Fri 12:30</td></tr><tr><td>Sprint Qualifying</td><td>Fri 16:30"
    "</td></tr><tr><td><span class=live>LIVE</span>Sprint</td><td>Sat 12:00</td></tr><tr><td>"
    "Qualifying</td><td>Sat 16:00</td></tr><tr><td>Race</td><td>Sun 15:00</td></tr></table>"
)


def _head_scripts() -> str:
    """Tag manager, consent and ad config: on every page of such sites, before anything else."""
    return (
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        "gtag('js',new Date());gtag('config','G-PL4N3L1V3',{anonymize_ip:true});</script>"
        "<script type='application/ld+json'>"
        + json.dumps({"@context": "https://schema.org", "@type": "BroadcastEvent",
                      "name": "Formula 1 Sprint", "isLiveBroadcast": True,
                      "startDate": "2026-05-23T12:00:00Z",
                      "videoFormat": "HD"})
        + "</script>"
        "<script>var atOptions={'key':'9f1c2e7a4b','format':'iframe','height':90,'width':728,"
        "'params':{}};window._pop={url:'/g/ads/landing',zone:48213,every:3600};</script>"
    )


def site(title: str, player: str, *, scripts: str = "", head: str = "", chat: bool = True) -> str:
    """A page of "PitLane Live": header, the player, servers, ads, schedule, chat, footer."""
    aside = (f"<aside><h3>Live chat</h3><iframe src='{PREFIX}/widgets/chat?room=f1' "
             "loading=lazy title=chat></iframe><h3>Weekend</h3>" + _SCHEDULE + "</aside>"
             if chat else f"<aside><h3>Weekend</h3>{_SCHEDULE}</aside>")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)} | PitLane Live - F1 streams free HD</title>"
        "<meta name=description content='Watch F1 live stream free in HD: practice, qualifying, "
        "sprint and race. No sign-up.'>"
        f"<meta property=og:image content='{PREFIX}/static/poster.svg'>"
        f"<link rel=icon href='{PREFIX}/static/poster.svg'><style>{_STYLE}</style>"
        + _head_scripts() + head +
        f"<script async src='{PREFIX}/static/analytics.js'></script></head><body>"
        "<header><b>PITLANE<span style='color:#e10600'>LIVE</span></b><nav>"
        "<a href='/g/'>Home</a><a href='#f1'>Formula 1</a><a href='#motogp'>MotoGP</a>"
        "<a href='#indycar'>IndyCar</a><a href='#schedule'>Schedule</a></nav></header>"
        "<div class=wrap><main>"
        f"<h1><span class=live>LIVE</span>{html.escape(title)}</h1>"
        "<div class=ad><script>atOptions.key='9f1c2e7a4b';</script>"
        f"<script src='{PREFIX}/ads/invoke.js'></script></div>"
        f"<div class=player>{player}</div>"
        "<div class=servers>Servers: <button data-s=1 class=on>HD 1</button>"
        "<button data-s=2 onclick=\"this.textContent='offline'\">HD 2</button>"
        "<button data-s=3 onclick=\"this.textContent='offline'\">Mobile</button></div>"
        "<p>If the stream does not start, disable your ad blocker and refresh. Streams start 30 "
        "minutes before the session.</p></main>" + aside + "</div>"
        "<footer>PitLane Live does not host any video. All content is provided by non-affiliated "
        "third parties. DMCA: abuse@pitlane.invalid</footer>"
        "<div id=cookie>We use cookies for ads and analytics. <button onclick=\"this.parentNode"
        ".remove()\">OK</button></div>"
        f"<script src='{PREFIX}/static/pop.js'></script>"
        f"<script src='{PREFIX}/static/slipplayer.js'></script>" + scripts +
        "</body></html>"
    )


def frame(title: str, body: str, *, head: str = "", scripts: str = "") -> str:
    """An embed page (what lives inside an iframe): no site chrome, a player and its scripts."""
    return (
        "<!DOCTYPE html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>{head}<style>html,body{{margin:0;height:100%;"
        "background:#000;color:#ddd;font:13px sans-serif;overflow:hidden}video,iframe{width:100%;"
        "height:100%;border:0}.sp-status{position:absolute;left:6px;bottom:4px;color:#9f9}"
        f"</style></head><body>{body}<script src='{PREFIX}/static/slipplayer.js'></script>"
        f"{scripts}</body></html>"
    )


def _video(attrs: str = "") -> str:
    return (f"<video id=vplayer class='video-js vjs-default-skin' controls muted playsinline "
            f"preload=none poster='{PREFIX}/static/poster.svg' {attrs}>")


def _source_page(title: str, master: str) -> str:
    """A player whose <source> is the playlist (the URL is in the markup)."""
    player = (_video() + f"<source src='{html.escape(master)}' type='application/x-mpegURL'>"
              "</video><div class=sp-status></div>")
    return site(title, player, scripts="<script>SlipPlayer.attach('vplayer');</script>")


def _js(value: str) -> str:
    """A JavaScript string literal."""
    return json.dumps(value)


# 1. noext
def noext(master: str) -> str:
    player = (_video("data-setup='{\"fluid\":true,\"liveui\":true}'")
              + f"<source src='{html.escape(master)}'></video><div class=sp-status></div>")
    return site("F1 Sprint Live", player,
                scripts="<script>SlipPlayer.attach('vplayer');</script>")


# 2. packed
def packed(stream: str, ad_vast: str) -> str:
    stream_js = (
        "var player=new Clappr.Player({source:" + _js(stream) + ",parentId:'#vplayer',"
        "autoPlay:true,mute:true,width:'100%',height:'100%',poster:'/g/static/poster.svg',"
        "playback:{hlsjsConfig:{liveSyncDurationCount:3,enableWorker:true}}});"
        "player.on&&player.on('error',function(e){console.log('player error',e)});"
    )
    ads_js = (
        "var adcfg={zone:48213,vast:" + _js(ad_vast) + ",freq:3,skip:5,"
        "creative:'/g/ads/creative.mp4'};window._adcfg=adcfg;if(!window.adblock){var s=document"
        ".createElement('script');s.async=true;s.src='/g/static/pop.js?z='+adcfg.zone;"
        "document.head.appendChild(s)}"
    )
    player = "<div id=vplayer style='width:100%;height:100%'></div>"
    # The ad block comes first and is packed once; the stream's is packed twice.
    scripts = (f"<script type='text/javascript'>{pack(ads_js)}</script>"
               f"<script type='text/javascript'>{pack(pack(stream_js))}</script>")
    return site("Formula 1 Sprint - Live Stream", player, scripts=scripts)


# 3. base64
def base64_page(stream: str, ad_vast: str) -> str:
    config = {"width": "100%", "aspectratio": "16:9", "autostart": True, "mute": True,
              "image": f"{PREFIX}/static/poster.svg", "title": "F1 Sprint",
              "sources": [{"file": stream, "type": "hls", "label": "HD"}],
              "advertising": {"client": "vast", "tag": ad_vast},
              "logo": {"file": f"{PREFIX}/static/poster.svg", "link": "/g/"}}
    # PHP's json_encode escapes slashes; so do these sites' configs.
    blob = base64.b64encode(json.dumps(config).replace("/", "\\/").encode()).decode()
    fallback = base64.b64encode(stream.encode()).decode()
    player = (f"<div id=vplayer data-config='{blob}' style='width:100%;height:100%'></div>"
              "<div class=sp-status></div>")
    script = (
        "<script>(function(){var el=document.getElementById('vplayer');"
        "var cfg=JSON.parse(atob(el.getAttribute('data-config')));"
        f"var backup=atob(\"{fallback}\");"
        "if(!cfg.sources||!cfg.sources.length){cfg.sources=[{file:backup}]}"
        "jwplayer('vplayer').setup(cfg);})();</script>"
    )
    return site("F1 Sprint Race Live HD", player, scripts=script)


# 4. player-config
def player_config(scheme: str, netloc: str) -> str:
    host, _, port = netloc.partition(":")
    script = (
        "<script type='text/javascript'>\n"
        "  var _proto = " + _js(scheme) + " + \"://\";\n"
        "  var _srv = " + _js(host) + (f" + \":\" + {_js(port)}" if port else "") + ";\n"
        "  var _path = \"/g/cdn/\" + \"player-config/\" + \"abr/\";\n"
        "  var _file = \"master\" + \".m3u8\";\n"
        "  var fallback = { source: \"/g/static/offline.mp4\", mimeType: \"video/mp4\" };\n"
        "  var playerInstance = jwplayer(\"vplayer\");\n"
        "  playerInstance.setup({\n"
        "    title: \"F1 Sprint LIVE\",\n"
        "    image: \"/g/static/poster.svg\",\n"
        "    sources: [{ file: _proto + _srv + _path + _file, type: \"hls\", label: \"Auto\" }],\n"
        "    advertising: { client: \"vast\", tag: \"/g/ads/vast.xml?zone=77\" },\n"
        "    autostart: true, mute: true, width: \"100%\", aspectratio: \"16:9\",\n"
        "    cast: {}, playbackRateControls: false\n"
        "  });\n"
        "  if (!window.MediaSource) { new Clappr.Player(Object.assign({parentId: '#vplayer'}, "
        "fallback)); }\n"
        "</script>"
    )
    return site("F1 Live: Sprint", "<div id=vplayer style='width:100%;height:100%'></div>",
                scripts=script)


# 5. docwrite
def docwrite(frame_src: str) -> str:
    tag = (f'<iframe src="{frame_src}" width="100%" height="100%" frameborder="0" '
           'scrolling="no" allowfullscreen="true" allow="autoplay; encrypted-media"></iframe>')
    escaped = "".join(f"%{ord(c):02X}" for c in tag)
    return site("F1 Sprint stream", f"<script type='text/javascript'>document.write(unescape('"
                f"{escaped}'));</script>")


def docwrite_frame(video_id: str) -> str:
    script = (
        "<script>var vid=" + _js(video_id) + ";var w=window.innerWidth||640;"
        "document.write('<if'+'rame src=\"'+'/g/em'+'bed/doc'+'write/pl'+'ayer?v='+vid+"
        "'&amp;w='+w+'\" width=\"100%\" height=\"100%\" frameborder=\"0\" allowfullscreen></if'"
        "+'rame>');</script>"
    )
    return frame("Player", script, scripts="")


def frame_player(stream: str, *, referrer_policy: str = "", extra: str = "") -> str:
    """A bare embed player that starts on load."""
    head = f"<meta name=referrer content='{referrer_policy}'>" if referrer_policy else ""
    body = (_video() + "</video><div class=sp-status></div>" + extra)
    return frame("Live player", body, head=head,
                 scripts=f"<script>new SlipPlayer('vplayer').load({_js(stream)});</script>")


# 6. deep-iframes
def deep_page(first_hop: str) -> str:
    return site("F1 Sprint (server 3)", f"<iframe src='{html.escape(first_hop)}' width=100% "
                "height=100% frameborder=0 allowfullscreen scrolling=no></iframe>")


def deep_hop(level: int, next_hop: str) -> str:
    return frame(f"embed {level}", (
        f"<!-- hop {level} --><div style='position:absolute;top:0;right:0;font-size:10px;"
        f"opacity:.3'>srv{level}</div><iframe src='{html.escape(next_hop)}' width=100% height=100% "
        "frameborder=0 allowfullscreen scrolling=no></iframe>"))


# 7. xhr-token
def xhr_token() -> str:
    script = (
        "<script>(function(){var v=document.getElementById('vplayer');"
        "var x=new XMLHttpRequest();x.open('GET','/g/api/token?ch=f1-sprint&_='+Date.now(),true);"
        "x.setRequestHeader('X-Requested-With','XMLHttpRequest');x.withCredentials=true;"
        "x.onload=function(){if(x.status!==200){v.setAttribute('data-state','token refused');"
        "return}var d=JSON.parse(x.responseText);if(!d.ok){return}"
        "var u=location.protocol+'//'+location.host+'/g/cdn/xhr-token/'+'live/master.m3u8'+"
        "'?token='+encodeURIComponent(d.token)+'&expires='+d.expires;"
        "new SlipPlayer(v).load(u);setTimeout(function(){location.reload()},(d.ttl-10)*1000)};"
        "x.send();})();</script>"
    )
    return site("F1 Sprint - HD stream", _video() + "</video><div class=sp-status></div>",
                scripts=script)


# 8. click-to-play
def click_page(embed: str) -> str:
    return site("F1 Sprint Live (embed)", (
        f"<iframe src='{html.escape(embed)}' width=100% height=100% frameborder=0 "
        "allow='autoplay; fullscreen' allowfullscreen scrolling=no></iframe>"))


def _obfuscated_strings(values: Iterable[str], offset: int) -> str:
    """javascript-obfuscator's string array: base64 strings behind an index function."""
    arr = ",".join(_js(base64.b64encode(v.encode()).decode()) for v in values)
    return (f"var _0x3a7f=[{arr}];function _0x1c(_0x2b){{_0x2b=_0x2b-{hex(offset)};"
            "return atob(_0x3a7f[_0x2b]);}")


def click_embed(master_path: str) -> str:
    parts = ["location", "protocol", "//", "host", master_path, "click", "vplayer",
             "play-overlay", "none", "style", "display"]
    table = _obfuscated_strings(parts, 0x1F4)

    def s(i: int) -> str:
        return f"_0x1c({hex(0x1F4 + i)})"

    script = (
        f"<script>{table}(function(){{var _0xv=document.getElementById({s(6)}),"
        f"_0xo=document.getElementById({s(7)});"
        f"_0xo.addEventListener({s(5)},function(){{_0xo[{s(9)}][{s(10)}]={s(8)};"
        f"var _0xu=window[{s(0)}][{s(1)}]+{s(2)}+window[{s(0)}][{s(3)}]+{s(4)};"
        "new SlipPlayer(_0xv).load(_0xu);},{once:true});"
        "if(window.top===window.self){document.title='Embed only';}})();</script>"
    )
    body = (_video() + "</video><div class=sp-status></div>"
            "<div id=play-overlay role=button aria-label='Play' style='position:absolute;inset:0;"
            "display:flex;align-items:center;justify-content:center;cursor:pointer;"
            "background:rgba(0,0,0,.35)'><svg width=96 height=96 viewBox='0 0 96 96'>"
            "<circle cx=48 cy=48 r=46 fill='#e10600'/><path d='M38 28l32 20-32 20z' fill='#fff'/>"
            "</svg></div>")
    return frame("Live", body, scripts=script)


# 9. ua-origin
def ua_origin(master: str) -> str:
    return _source_page("F1 Sprint - Stream 2", master)


# 10. decoy-vod
def decoy(ad: str, stream: str) -> str:
    script = (
        "<script>jwplayer('vplayer').setup({\n"
        "  autostart: true, mute: true, width: '100%', aspectratio: '16:9',\n"
        "  playlist: [\n"
        f"    {{ title: 'Advertisement', sources: [{{ file: {_js(ad)}, type: 'hls' }}] }},\n"
        f"    {{ title: 'F1 Sprint LIVE', sources: [{{ file: {_js(stream)}, type: 'hls' }}] }}\n"
        "  ]\n});</script>"
    )
    return site("F1 Sprint live now", "<div id=vplayer style='width:100%;height:100%'></div>",
                scripts=script)


# 11. cloaked
def cloaked(master: str) -> str:
    return _source_page("F1 Sprint stream HD", master)


# 12. redirect-cdn
def redirect_cdn(master: str) -> str:
    return _source_page("F1 Sprint - multi CDN", master)


# The rest of the site.
def index(base: str) -> str:
    rows = "".join(
        f"<tr><td><a href='{p.path}'>{p.id}</a></td><td>{p.extractor}</td>"
        f"<td>{html.escape(p.description)}</td></tr>" for p in PATTERNS)
    toml = "".join(f'[[sources]]\nid = "gallery-{p.id}"\nurl = "{base}{p.path}"\n'
                   'extractor = "auto"\n\n' for p in PATTERNS)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Slipstream gallery"
        f"</title><style>{_STYLE}body{{padding:1rem 2rem}}pre{{background:#151922;padding:1rem}}"
        "</style></head><body><h1>Slipstream gallery of hard pages</h1><p>Each page hides the "
        "demo's live stream the way a kind of real live-sport embed site does, behind the check "
        "a CDN of that kind makes.</p><table><tr><th>page</th><th>expected extractor</th>"
        f"<th>pattern</th></tr>{rows}</table><h2>As sources</h2><pre>{html.escape(toml)}</pre>"
        "</body></html>"
    )


def chat() -> str:
    msgs = ["lights out!", "stream is smooth today", "any 1080p link?", "VER pit next lap",
            "box box", "server 2 is down again", "sound lags a bit for me"]
    items = "".join(f"<li><b>user{i * 37 % 100}</b>: {m}</li>" for i, m in enumerate(msgs))
    return (f"<!DOCTYPE html><html><body style='background:#111;color:#ccc;font:12px sans-serif'>"
            f"<ul style='list-style:none;padding:4px'>{items}</ul><input placeholder='Say "
            "something...'><script>setInterval(function(){},15000)</script></body></html>")


def banner(key: str, width: int, height: int) -> str:
    return (f"<!DOCTYPE html><html><body style='margin:0'><a href='/g/ads/landing?k="
            f"{html.escape(key)}' target=_blank><div style='width:{width}px;height:{height}px;"
            "background:linear-gradient(90deg,#1a7,#17a);color:#fff;font:bold 20px sans-serif;"
            "display:flex;align-items:center;justify-content:center'>Bet on the Sprint: 100% bonus"
            "</div></a><img src='/g/ads/px.gif?imp=1' width=1 height=1 alt=''></body></html>")


def vast(zone: str) -> str:
    return ("<?xml version='1.0' encoding='UTF-8'?><VAST version='3.0'><Ad id='" +
            html.escape(zone) + "'><InLine><AdSystem>PopAds</AdSystem><AdTitle>Sprint bonus"
            "</AdTitle><Impression><![CDATA[/g/ads/px.gif?vast=1]]></Impression><Creatives>"
            "<Creative><Linear><Duration>00:00:15</Duration><MediaFiles><MediaFile delivery="
            "'progressive' type='video/mp4' width='640' height='360'><![CDATA[/g/ads/creative.mp4"
            "]]></MediaFile></MediaFiles></Linear></Creative></Creatives></InLine></Ad></VAST>")


POSTER: Final = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 640 360'><rect width='640' height='360' "
    "fill='#111'/><text x='320' y='190' fill='#e10600' font-family='sans-serif' font-size='42' "
    "text-anchor='middle'>PITLANE LIVE</text></svg>"
)
