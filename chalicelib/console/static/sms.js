// How the API counts an SMS (chalicelib/wire/sms_encoding.py, kept in step by a test):
// GSM 03.38 when every character is in it, else UCS-2; 160/153 septets or 70/67 UTF-16
// units per segment; a character never straddles two segments.
(function () {
  "use strict";
  var BASIC =
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "\f^{}\\[~]|€";
  var LIMITS = { "GSM-7": [160, 153], "UCS-2": [70, 67] };

  function isBasic(ch) {
    return ch !== "\x1b" && BASIC.indexOf(ch) >= 0;
  }
  function isGsm7(chars) {
    return chars.every(function (ch) {
      return isBasic(ch) || EXTENSION.indexOf(ch) >= 0;
    });
  }
  function analyze(text) {
    var chars = Array.from(text); // code points, as Python iterates a str
    var encoding = isGsm7(chars) ? "GSM-7" : "UCS-2";
    var cost = encoding === "GSM-7"
      ? function (ch) { return isBasic(ch) ? 1 : 2; }
      : function (ch) { return ch.codePointAt(0) > 0xffff ? 2 : 1; };
    var costs = chars.map(cost);
    var units = costs.reduce(function (a, b) { return a + b; }, 0);
    var single = LIMITS[encoding][0], part = LIMITS[encoding][1];
    var segments = 1;
    if (units > single) {
      var used = 0;
      costs.forEach(function (c) {
        if (used + c > part) { segments += 1; used = 0; }
        used += c;
      });
    }
    return { characters: chars.length, encoding: encoding, units: units, segments: segments,
             perSegment: units > single ? part : single };
  }
  window.ChinqitSms = { analyze: analyze };
})();
