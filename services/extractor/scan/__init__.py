"""Finding playlist candidates in what a page hides, without running its JavaScript.

Pure, bounded modules, each owning one thing: ``budget`` (the time and output a scan may use),
``escapes`` (JavaScript and percent escapes), ``jslex`` (JavaScript tokens), ``packer`` (Dean
Edwards' packer), ``b64`` (base64 literals), ``evaluate`` (string expressions: concatenation,
variables, ``atob``/``unescape``), ``scripts`` (a script's player configs and strings),
``urls`` (what looks like a playlist URL, and how likely), ``markup`` (HTML, parsed with lxml)
and ``page`` (all of them together on one page). Decoders recognise what they decode by its
shape, never by variable names, which such sites change every month.
"""
