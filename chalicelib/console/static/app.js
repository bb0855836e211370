// The Chinqit SMS console: a few pages over the API's own routes, same origin.
// Rules kept everywhere: text from the API (an SMS, a name, an error) is put in the page
// with textContent, never as HTML; no inline handlers; the credential lives in
// sessionStorage only and is never shown.
(function () {
  "use strict";

  var LANGUAGES = ["fr", "ar", "en"];
  var RTL = { ar: true };
  var LOCALES = { fr: "fr-FR", ar: "ar-MR-u-nu-latn", en: "en-GB" }; // Maghreb digits
  var CREDENTIAL = "chinqit.credential";
  var LANGUAGE = "chinqit.language";
  var API_ROOT = new URL("../", document.baseURI);
  var EVENTS = ["sms.received", "sms.sent", "sms.delivered", "sms.read", "sms.failed",
                "device.offline", "device.online", "contact.opted_out", "contact.opted_in"];
  var FORMATS = ["standard", "smsmobileapi-v2"]; // webhook formats, the first is the default
  var STATUSES = ["scheduled", "queued", "sending", "sent", "delivered", "read", "failed",
                  "expired", "cancelled", "received"];
  var BULK_CHUNK = 100; // the API's most recipients per /messages/bulk
  var catalogue = {};
  var language = "fr";

  // ---- text ---------------------------------------------------------------------------

  function t(key, values) {
    var text = Object.prototype.hasOwnProperty.call(catalogue, key) ? catalogue[key] : key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  function loadLanguage(code) {
    var url = document.querySelector('meta[name="chinqit-catalogue-' + code + '"]').content;
    return fetch(url).then(function (r) { return r.json(); }).then(function (texts) {
      catalogue = texts;
      language = code;
      localStorage.setItem(LANGUAGE, code);
      document.documentElement.lang = code;
      document.documentElement.dir = RTL[code] ? "rtl" : "ltr";
      document.title = t("app.title");
    });
  }

  function formatTime(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString(LOCALES[language],
                                        { dateStyle: "short", timeStyle: "medium" });
  }

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    return seconds < 90 ? t("unit.seconds", { n: Math.round(seconds) })
                        : t("unit.minutes", { n: Math.round(seconds / 60) });
  }

  function percent(ratio) {
    return ratio === null || ratio === undefined ? "—" : Math.round(ratio * 1000) / 10 + " %";
  }

  // ---- DOM: elements built from parts, strings always as text ---------------------------

  function h(tag, props) {
    var element = document.createElement(tag);
    Object.keys(props || {}).forEach(function (name) {
      var value = props[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") element.textContent = value;
      else if (name === "on") Object.keys(value).forEach(function (type) {
        element.addEventListener(type, value[type]);
      });
      else if (name === "class") element.className = value;
      else if (name in element && typeof value !== "string") element[name] = value;
      else element.setAttribute(name, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) append(element, arguments[i]);
    return element;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(parent, c); });
    else parent.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }

  function replace(parent) {
    parent.replaceChildren();
    for (var i = 1; i < arguments.length; i++) append(parent, arguments[i]);
  }

  var ids = 0;
  function field(label, control, hint) {
    control.id = control.id || "f" + (++ids);
    return h("div", { class: "field" },
      h("label", { for: control.id, text: label }), control,
      hint ? h("small", { class: "hint", text: hint }) : null);
  }

  function notice(kind, text) {
    return h("p", { class: "notice " + kind, role: kind === "error" ? "alert" : "status",
                    text: text });
  }

  function badge(status) {
    return h("span", { class: "badge status-" + status, text: t("status." + status) });
  }

  // ---- the API ------------------------------------------------------------------------

  function credential() {
    try { return JSON.parse(sessionStorage.getItem(CREDENTIAL)); } catch (e) { return null; }
  }

  function authHeaders(saved) {
    if (!saved || !saved.value) return {};
    return saved.kind === "bearer" ? { Authorization: "Bearer " + saved.value }
                                   : { "X-API-Key": saved.value };
  }

  function call(method, path, options) {
    options = options || {};
    var url = new URL(path, API_ROOT);
    Object.keys(options.query || {}).forEach(function (name) {
      var value = options.query[name];
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
    });
    var headers = authHeaders(options.credential || credential());
    var body;
    if (options.form) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(options.form).toString();
    } else if (options.json) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    return fetch(url, { method: method, headers: headers, body: body, credentials: "omit" })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if ((response.status === 401 || response.status === 403) && !options.credential) {
            signOut(data.message);
          }
          return { ok: response.ok, status: response.status, data: data };
        });
      }, function () {
        return { ok: false, status: 0, data: { message: t("error.network") } };
      });
  }

  function problem(answer) {
    var data = answer.data || {};
    var details = (data.errors || []).map(function (e) {
      return e.field ? e.field + ": " + e.message : e.message;
    });
    return [data.message || data.error_description || data.error || t("error.unknown")]
      .concat(details.filter(function (d) { return (data.message || "").indexOf(d) < 0; })).join(" — ");
  }

  // ---- shell --------------------------------------------------------------------------

  var PAGES = [
    ["overview", "nav.overview"], ["send", "nav.send"], ["messages", "nav.messages"],
    ["inbox", "nav.inbox"], ["webhook", "nav.webhook"], ["devices", "nav.devices"]
  ];
  var signOutReason = null;

  function header() {
    var top = document.getElementById("top");
    var chooser = h("select", { "aria-label": t("language.choose"), on: { change: function () {
      loadLanguage(chooser.value).then(route);
    } } }, LANGUAGES.map(function (code) {
      return h("option", { value: code, selected: code === language, text: t("language." + code) });
    }));
    var current = (location.hash.replace(/^#\/?/, "").split("/")[0]) || "overview";
    var nav = credential() ? h("nav", { "aria-label": t("nav.label") }, h("ul", null,
      PAGES.map(function (page) {
        return h("li", null, h("a", { href: "#/" + page[0], text: t(page[1]),
          "aria-current": page[0] === current ? "page" : null }));
      }),
      h("li", null, h("a", { href: new URL("docs", API_ROOT).href, text: t("nav.docs") }))))
      : null;
    var out = credential() ? h("button", { type: "button", class: "quiet", text: t("signout"),
      on: { click: function () { signOut(); } } }) : null;
    replace(top, h("div", { class: "brand", text: t("app.title") }), nav,
      h("div", { class: "tools" }, chooser, out));
    document.querySelector(".skip").textContent = t("skip");
  }

  function signOut(reason) {
    sessionStorage.removeItem(CREDENTIAL);
    signOutReason = reason || null;
    if (location.hash !== "#/signin") location.hash = "#/signin"; else route();
  }

  function route() {
    var parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    if (!credential() && parts[0] !== "signin") { location.hash = "#/signin"; return; }
    header();
    var main = document.getElementById("main");
    var page = {
      signin: signInPage, overview: overviewPage, send: sendPage, messages: messagesPage,
      message: messagePage, inbox: inboxPage, conversation: conversationPage,
      webhook: webhookPage, devices: devicesPage
    }[parts[0]] || overviewPage;
    replace(main);
    page(main, parts.slice(1));
  }

  function title(text) {
    return h("h1", { text: text });
  }

  // ---- sign-in ------------------------------------------------------------------------

  function signInPage(main) {
    var status = h("div", { "aria-live": "polite" },
      signOutReason ? notice("error", signOutReason) : null);
    signOutReason = null;
    var key = h("input", { type: "password", autocomplete: "off", required: true,
                           spellcheck: "false" });
    var keyForm = h("form", { class: "card", on: { submit: function (event) {
      event.preventDefault();
      tryCredential({ kind: "key", value: key.value.trim() }, status);
    } } }, h("h2", { text: t("signin.key") }), field(t("signin.apiKey"), key),
      h("button", { type: "submit", text: t("signin.submit") }));
    var clientId = h("input", { type: "text", autocomplete: "off", required: true });
    var secret = h("input", { type: "password", autocomplete: "off", required: true });
    var oauthForm = h("form", { class: "card", on: { submit: function (event) {
      event.preventDefault();
      call("POST", "oauth2/token", { credential: {}, form: { grant_type: "client_credentials",
        client_id: clientId.value.trim(), client_secret: secret.value } })
        .then(function (answer) {
          if (!answer.ok) { replace(status, notice("error", problem(answer))); return; }
          tryCredential({ kind: "bearer", value: answer.data.access_token }, status);
        });
    } } }, h("h2", { text: t("signin.oauth") }), field(t("signin.clientId"), clientId),
      field(t("signin.clientSecret"), secret),
      h("button", { type: "submit", text: t("signin.submit") }));
    replace(main, title(t("signin.title")), h("p", { text: t("signin.intro") }), status,
      h("div", { class: "columns" }, keyForm, oauthForm));
    key.focus();
  }

  function tryCredential(saved, status) {
    call("GET", "messages", { credential: saved, query: { limit: 1 } }).then(function (answer) {
      if (!answer.ok) { replace(status, notice("error", problem(answer))); return; }
      sessionStorage.setItem(CREDENTIAL, JSON.stringify(saved));
      location.hash = "#/overview";
    });
  }

  // ---- overview -----------------------------------------------------------------------

  function overviewPage(main) {
    var body = h("div", null, h("p", { class: "loading", text: t("loading") }));
    replace(main, title(t("overview.title")), body);
    call("GET", "stats", { query: { days: 14 } }).then(function (answer) {
      if (!answer.ok) { replace(body, notice("error", problem(answer))); return; }
      var s = answer.data;
      var chart = h("figure", { class: "chart card" },
        h("figcaption", { text: t("overview.chart") }));
      replace(body,
        h("div", { class: "figures" },
          figure(t("overview.outbound"), s.totals.outbound),
          figure(t("overview.deliveryRate"), percent(s.deliveryRate)),
          figure(t("overview.queuedToSent"), formatSeconds(s.medianSeconds.queuedToSent)),
          figure(t("overview.sentToDelivered"), formatSeconds(s.medianSeconds.sentToDelivered)),
          figure(t("overview.otp"), s.otp.verified + " / " + s.otp.requested
                 + " (" + percent(s.otp.conversion) + ")"),
          figure(t("overview.unread"), s.unreadInbound, "#/inbox")),
        chart, dayTable(s.days),
        s.complete ? null : notice("warning", t("overview.incomplete")));
      drawChart(chart, s.days);
    });
  }

  function figure(label, value, link) {
    var shown = link ? h("a", { href: link, text: String(value) }) : String(value);
    return h("div", { class: "figure card" }, h("span", { class: "label", text: label }),
      h("strong", null, shown));
  }

  var COLUMNS = ["sent", "delivered", "failed"];
  var COLOURS = { sent: "#2563eb", delivered: "#15803d", failed: "#b91c1c" };

  function drawChart(container, days) {
    var x = days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000; });
    var data = [x].concat(COLUMNS.map(function (c) {
      return days.map(function (d) { return d[c]; });
    }));
    var width = Math.max(280, Math.min(container.clientWidth - 32, 1100));
    function day(seconds) {
      return seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000)
        .toLocaleDateString(LOCALES[language], { day: "numeric", month: "short", timeZone: "UTC" });
    }
    new uPlot({
      width: width, height: 260,
      scales: { x: { time: true } },
      axes: [{ values: function (u, splits) { return splits.map(day); } },
             { label: t("overview.messages") }],
      series: [{ label: t("overview.day"), value: function (u, v) { return day(v); } }]
        .concat(COLUMNS.map(function (c) {
        return { label: t("status." + c), stroke: COLOURS[c], width: 2,
                 points: { show: true } };
      }))
    }, data, container);
  }

  function dayTable(days) {
    return h("details", { class: "card" }, h("summary", { text: t("overview.table") }),
      h("table", null,
        h("thead", null, h("tr", null, h("th", { scope: "col", text: t("overview.day") }),
          ["outbound"].concat(COLUMNS, ["pending", "received"]).map(function (c) {
            return h("th", { scope: "col", text: t("column." + c) });
          }))),
        h("tbody", null, days.map(function (d) {
          return h("tr", null, h("th", { scope: "row", text: d.date }),
            ["outbound"].concat(COLUMNS, ["pending", "received"]).map(function (c) {
              return h("td", { text: String(d[c]) });
            }));
        }))));
  }

  // ---- send ---------------------------------------------------------------------------

  function sendPage(main) {
    replace(main, title(t("send.title")), singleForm(), bulkForm(), otpForm());
  }

  function counter(textarea) {
    var output = h("output", { class: "counter", "aria-live": "polite" });
    function update() {
      var a = window.ChinqitSms.analyze(textarea.value);
      output.textContent = t("send.counter", { characters: a.characters, encoding: a.encoding,
        segments: a.segments, units: a.units, limit: a.perSegment * a.segments });
      output.dataset.encoding = a.encoding;
      output.dataset.segments = String(a.segments);
    }
    textarea.addEventListener("input", update);
    update();
    return output;
  }

  function singleForm() {
    var phone = h("input", { type: "tel", name: "phoneNumber", required: true,
                             autocomplete: "off", placeholder: "+222 22 12 34 56" });
    var text = h("textarea", { name: "message", rows: 4, required: true });
    var result = h("div", { "aria-live": "polite" });
    var form = h("form", { class: "card", id: "send-one", on: { submit: function (event) {
      event.preventDefault();
      call("POST", "messages/send", { json: { phoneNumber: phone.value, message: text.value } })
        .then(function (answer) {
          if (!answer.ok) { replace(result, notice("error", problem(answer))); return; }
          replace(result, h("p", { class: "notice ok", role: "status" }, t("send.queued") + " ",
            h("a", { href: "#/message/" + encodeURIComponent(answer.data.messageId),
                     text: answer.data.messageId })));
          text.value = "";
          text.dispatchEvent(new Event("input"));
        });
    } } }, h("h2", { text: t("send.one") }), field(t("field.phone"), phone),
      field(t("field.message"), text), counter(text),
      h("button", { type: "submit", text: t("send.submit") }), result);
    return form;
  }

  function bulkForm() {
    var file = h("input", { type: "file", accept: ".csv,text/csv", required: true });
    var text = h("textarea", { rows: 3 });
    var progress = h("progress", { max: 1, value: 0, hidden: true,
                                   "aria-label": t("bulk.progress") });
    var result = h("div", { "aria-live": "polite" });
    return h("form", { class: "card", id: "send-bulk", on: { submit: function (event) {
      event.preventDefault();
      if (!file.files.length) return;
      file.files[0].text().then(function (csv) {
        sendBulk(parseCsv(csv, text.value), progress, result);
      });
    } } }, h("h2", { text: t("bulk.title") }), h("p", { class: "hint", text: t("bulk.intro") }),
      field(t("bulk.file"), file), field(t("bulk.message"), text), counter(text),
      h("button", { type: "submit", text: t("bulk.submit") }), progress, result);
  }

  // One recipient per line: phone[,message]; a first line naming the columns is skipped.
  function parseCsv(csv, fallback) {
    var rows = [];
    csv.split(/\r?\n/).forEach(function (line, index) {
      if (!line.trim()) return;
      var comma = line.indexOf(",");
      var phone = (comma < 0 ? line : line.slice(0, comma)).trim().replace(/^"|"$/g, "");
      var message = comma < 0 ? "" : line.slice(comma + 1).trim().replace(/^"|"$/g, "")
        .replace(/""/g, '"');
      if (index === 0 && /phone|num|tel/i.test(phone) && !/\d/.test(phone)) return;
      rows.push({ phoneNumber: phone, message: message || fallback, line: index + 1 });
    });
    return rows;
  }

  function sendBulk(rows, progress, result) {
    var batches = [];
    var byMessage = {};
    rows.forEach(function (row) {
      var batch = byMessage[row.message];
      if (!batch || batch.rows.length === BULK_CHUNK) {
        batch = byMessage[row.message] = { message: row.message, rows: [] };
        batches.push(batch);
      }
      batch.rows.push(row);
    });
    var outcome = [];
    progress.hidden = false;
    progress.max = rows.length || 1;
    progress.value = 0;
    replace(result);
    var chain = Promise.resolve();
    batches.forEach(function (batch) {
      chain = chain.then(function () {
        return call("POST", "messages/bulk", { json: { message: batch.message,
          phoneNumbers: batch.rows.map(function (r) { return r.phoneNumber; }) } })
          .then(function (answer) {
            outcome = outcome.concat(bulkOutcome(batch.rows, answer));
            progress.value += batch.rows.length;
          });
      });
    });
    chain.then(function () {
      outcome.sort(function (a, b) { return a.row.line - b.row.line; });
      replace(result, bulkTable(outcome));
    });
  }

  // Queued messages come back in the order of the accepted rows; a number the queue
  // refused is named in an error without an index, so those rows are matched by number.
  function bulkOutcome(rows, answer) {
    if (!answer.ok && !(answer.data.errors || []).length) {
      return rows.map(function (r) { return { row: r, reason: problem(answer) }; });
    }
    var refused = {};
    var unqueued = [];
    (answer.data.errors || []).forEach(function (e) {
      var index = /\[(\d+)\]$/.exec(e.field || "");
      if (index) refused[Number(index[1])] = e.message;
      else unqueued.push(e.message);
    });
    var accepted = rows.filter(function (r, i) { return refused[i] === undefined; });
    var messages = (answer.data.messages || []).slice();
    return rows.map(function (r, i) {
      if (refused[i] !== undefined) return { row: r, reason: refused[i] };
      if (!answer.ok) return { row: r, reason: problem(answer) };
      if (!unqueued.length) return { row: r, messageId: messages[accepted.indexOf(r)].messageId };
      var digits = r.phoneNumber.replace(/\D/g, "").slice(-8);
      var match = messages.filter(function (m) {
        return m.phoneNumber.replace(/\D/g, "").endsWith(digits);
      })[0];
      var reason = unqueued.filter(function (text) {
        return text.split(":")[0].replace(/\D/g, "").endsWith(digits);
      })[0];
      return match ? { row: r, messageId: match.messageId } : { row: r, reason: reason };
    });
  }

  function bulkTable(outcome) {
    var queued = outcome.filter(function (o) { return o.messageId; }).length;
    return [h("p", { class: "notice " + (queued === outcome.length ? "ok" : "warning"),
                     role: "status",
                     text: t("bulk.summary", { queued: queued, refused: outcome.length - queued }) }),
      h("table", { class: "bulk-result" }, h("thead", null, h("tr", null,
        h("th", { scope: "col", text: t("bulk.line") }),
        h("th", { scope: "col", text: t("field.phone") }),
        h("th", { scope: "col", text: t("field.status") }),
        h("th", { scope: "col", text: t("bulk.detail") }))),
        h("tbody", null, outcome.map(function (o) {
          return h("tr", { class: o.messageId ? "queued" : "refused" },
            h("td", { text: String(o.row.line) }), h("td", { text: o.row.phoneNumber }),
            h("td", { text: o.messageId ? t("bulk.queued") : t("bulk.refused") }),
            h("td", null, o.messageId ? h("a", { href: "#/message/" + o.messageId,
                                                   text: o.messageId }) : o.reason));
        })))];
  }

  function otpForm() {
    var phone = h("input", { type: "tel", required: true, autocomplete: "off" });
    var code = h("input", { type: "text", inputmode: "numeric", autocomplete: "one-time-code",
                            pattern: "[0-9]{6}", maxlength: 6 });
    var result = h("div", { "aria-live": "polite" });
    var send = h("button", { type: "button", text: t("otp.send"), on: { click: function () {
      call("POST", "otp/send", { json: { phoneNumber: phone.value } }).then(function (answer) {
        replace(result, answer.ok ? notice("ok", t("otp.sent", { minutes:
          Math.round((answer.data.expiresIn || 300) / 60) })) : notice("error", problem(answer)));
      });
    } } });
    var verify = h("button", { type: "submit", text: t("otp.verify") });
    return h("form", { class: "card", id: "otp", on: { submit: function (event) {
      event.preventDefault();
      call("POST", "otp/verify", { json: { phoneNumber: phone.value, otp: code.value } })
        .then(function (answer) {
          replace(result, answer.ok ? notice("ok", t("otp.verified"))
                                    : notice("error", problem(answer)));
        });
    } } }, h("h2", { text: t("otp.title") }), field(t("field.phone"), phone), send,
      field(t("otp.code"), code), verify, result);
  }

  // ---- messages -----------------------------------------------------------------------

  function select(name, options, current) {
    return h("select", { name: name }, h("option", { value: "", text: t("filter.any") }),
      options.map(function (o) {
        return h("option", { value: o[0], text: o[1], selected: o[0] === current });
      }));
  }

  function messagesPage(main) {
    var direction = select("direction", [["outbound", t("direction.outbound")],
                                         ["inbound", t("direction.inbound")]]);
    var status = select("status", STATUSES.map(function (s) { return [s, t("status." + s)]; }));
    var phone = h("input", { type: "tel", name: "phoneNumber", autocomplete: "off" });
    var from = h("input", { type: "date", name: "from" });
    var to = h("input", { type: "date", name: "to" });
    var unread = h("input", { type: "checkbox", name: "unread" });
    var list = h("div", { "aria-live": "polite" });
    var filters = h("form", { class: "card filters", on: { submit: function (event) {
      event.preventDefault();
      load(null, true);
    } } }, field(t("field.direction"), direction), field(t("field.status"), status),
      field(t("field.phone"), phone), field(t("filter.from"), from), field(t("filter.to"), to),
      h("div", { class: "field check" }, unread,
        h("label", { for: unread.id = "f" + (++ids), text: t("filter.unread") })),
      h("button", { type: "submit", text: t("filter.apply") }));
    var rows = h("tbody");
    var more = h("button", { type: "button", class: "quiet", hidden: true, text: t("more") });
    var cursor = null;
    more.addEventListener("click", function () { load(cursor, false); });
    function load(from_cursor, fresh) {
      var query = { direction: direction.value, status: status.value, phoneNumber: phone.value,
                    from: from.value, to: to.value, limit: 25, cursor: from_cursor };
      if (unread.checked) query.unread = "true";
      call("GET", "messages", { query: query }).then(function (answer) {
        if (!answer.ok) { replace(list, notice("error", problem(answer))); return; }
        if (fresh) rows.replaceChildren();
        answer.data.messages.forEach(function (m) { rows.appendChild(messageRow(m)); });
        cursor = answer.data.nextCursor;
        more.hidden = !cursor;
        if (fresh) replace(list, rows.childNodes.length ? messageTable(rows) :
          h("p", { class: "empty", text: t("messages.none") }), more);
      });
    }
    replace(main, title(t("messages.title")), filters, list);
    load(null, true);
  }

  function messageTable(rows) {
    return h("table", { class: "messages" }, h("thead", null, h("tr", null,
      ["field.date", "field.direction", "field.phone", "field.message", "field.status"]
        .map(function (k) { return h("th", { scope: "col", text: t(k) }); }))), rows);
  }

  function messageRow(m) {
    var link = h("a", { href: "#/message/" + encodeURIComponent(m.messageId),
                        text: formatTime(m.createdAt) });
    return h("tr", { class: m.direction === "inbound" && !m.read ? "unread" : null },
      h("td", null, link), h("td", { text: t("direction." + m.direction) }),
      h("td", { class: "phone", dir: "ltr", text: m.phoneNumber }),
      h("td", { class: "text", dir: "auto", text: m.message }), h("td", null, badge(m.status)));
  }

  function messagePage(main, parts) {
    var id = parts[0];
    var result = h("div", { "aria-live": "polite" });
    replace(main, title(t("message.title")), result);
    call("GET", "messages/" + encodeURIComponent(id)).then(function (answer) {
      if (!answer.ok) { replace(result, notice("error", problem(answer))); return; }
      var m = answer.data;
      var actions = h("div", { class: "actions" });
      var status = h("div", { "aria-live": "polite" });
      if (m.status === "failed" || m.status === "expired") {
        actions.appendChild(h("button", { type: "button", text: t("message.resend"), on: {
          click: function () { act("POST", "messages/" + id + "/resend", status); } } }));
      }
      if (m.direction === "inbound" && !m.read) {
        actions.appendChild(h("button", { type: "button", text: t("message.markRead"), on: {
          click: function () { act("POST", "messages/" + id + "/read", status); } } }));
      }
      actions.appendChild(h("button", { type: "button", class: "danger",
        text: t("message.delete"), on: { click: function () {
          if (!window.confirm(t("message.confirmDelete"))) return;
          call("DELETE", "messages/" + encodeURIComponent(id)).then(function (a) {
            if (a.ok) location.hash = "#/messages";
            else replace(status, notice("error", problem(a)));
          });
        } } }));
      replace(result, h("dl", { class: "card details" },
        detail(t("field.phone"), h("span", { dir: "ltr", text: m.phoneNumber })),
        detail(t("field.direction"), t("direction." + m.direction)),
        detail(t("field.status"), badge(m.status)),
        m.statusReason ? detail(t("field.reason"), m.statusReason) : null,
        detail(t("field.message"), h("span", { class: "sms-text", dir: "auto", text: m.message })),
        detail(t("field.encoding"), m.encoding + " · " + t("send.segments", { n: m.segments })),
        m.deviceId ? detail(t("field.device"), m.deviceId) : null,
        detail("ID", m.messageId)),
        h("h2", { text: t("message.timeline") }), timeline(m), actions, status,
        m.direction === "inbound" ? h("p", null, h("a", { href: "#/conversation/" +
          encodeURIComponent(m.phoneNumber), text: t("inbox.open") })) : null);
    });
  }

  function act(method, path, status) {
    call(method, path).then(function (answer) {
      if (answer.ok) route(); else replace(status, notice("error", problem(answer)));
    });
  }

  function detail(label, value) {
    return [h("dt", { text: label }), h("dd", null, value)];
  }

  function timeline(m) {
    var steps = [[m.direction === "inbound" ? "received" : "queued", m.createdAt],
                 ["sent", m.sentAt], ["delivered", m.deliveredAt]];
    if (m.status === "failed" || m.status === "expired") steps.push([m.status, m.updatedAt]);
    return h("ol", { class: "timeline" }, steps.filter(function (s) { return s[1]; })
      .map(function (s) {
        return h("li", null, badge(s[0]), " ", h("time", { datetime: s[1],
                                                         text: formatTime(s[1]) }),
          (s[0] === "failed" || s[0] === "expired") && m.statusReason
            ? h("span", { class: "reason", text: " — " + m.statusReason }) : null);
      }));
  }

  // ---- inbox: received SMS as conversations -------------------------------------------

  function inboxPage(main) {
    var list = h("div", { "aria-live": "polite" }, h("p", { class: "loading", text: t("loading") }));
    replace(main, title(t("inbox.title")), list);
    call("GET", "messages", { query: { direction: "inbound", limit: 100 } }).then(function (a) {
      if (!a.ok) { replace(list, notice("error", problem(a))); return; }
      var threads = [];
      var byPhone = {};
      a.data.messages.forEach(function (m) {
        var thread = byPhone[m.phoneNumber];
        if (!thread) threads.push(thread = byPhone[m.phoneNumber] =
          { phone: m.phoneNumber, last: m, count: 0, unread: 0 });
        thread.count += 1;
        thread.unread += m.read ? 0 : 1;
      });
      replace(list, threads.length ? h("ul", { class: "threads" }, threads.map(function (th) {
        return h("li", { class: "card" + (th.unread ? " unread" : "") },
          h("a", { href: "#/conversation/" + encodeURIComponent(th.phone) },
            h("span", { class: "phone", dir: "ltr", text: th.phone })),
          th.unread ? h("span", { class: "badge unread-count",
                                  text: t("inbox.unread", { n: th.unread }) }) : null,
          h("p", { class: "text", dir: "auto", text: th.last.message }),
          h("small", { text: formatTime(th.last.createdAt) }));
      })) : h("p", { class: "empty", text: t("inbox.none") }));
    });
  }

  function conversationPage(main, parts) {
    var phone = parts[0];
    var thread = h("ol", { class: "conversation", "aria-live": "polite" });
    var text = h("textarea", { rows: 3, required: true });
    var status = h("div", { "aria-live": "polite" });
    var reply = h("form", { class: "card", on: { submit: function (event) {
      event.preventDefault();
      call("POST", "messages/send", { json: { phoneNumber: phone, message: text.value } })
        .then(function (answer) {
          if (!answer.ok) { replace(status, notice("error", problem(answer))); return; }
          text.value = "";
          text.dispatchEvent(new Event("input"));
          load();
        });
    } } }, field(t("inbox.reply"), text), counter(text),
      h("button", { type: "submit", text: t("send.submit") }), status);
    function load() {
      call("GET", "messages", { query: { phoneNumber: phone, limit: 100 } }).then(function (a) {
        if (!a.ok) { replace(status, notice("error", problem(a))); return; }
        var messages = a.data.messages.slice().reverse();
        replace(thread, messages.map(function (m) {
          var item = h("li", { class: "bubble " + m.direction + (m.direction === "inbound" &&
            !m.read ? " unread" : "") }, h("p", { class: "sms-text", dir: "auto", text: m.message }),
            h("small", null, formatTime(m.createdAt), " · ", badge(m.status)));
          if (m.direction === "inbound" && !m.read) {
            item.appendChild(h("button", { type: "button", class: "quiet",
              text: t("message.markRead"), on: { click: function () {
                call("POST", "messages/" + m.messageId + "/read").then(load);
              } } }));
          }
          return item;
        }));
      });
    }
    replace(main, title(t("inbox.with", { phone: phone })), thread, reply);
    load();
  }

  // ---- webhook ------------------------------------------------------------------------

  function webhookPage(main) {
    var body = h("div", null, h("p", { class: "loading", text: t("loading") }));
    replace(main, title(t("webhook.title")), body);
    call("GET", "webhook").then(function (answer) {
      if (!answer.ok && answer.status !== 404) {
        replace(body, notice("error", problem(answer)));
        return;
      }
      replace(body, webhookForm(answer.ok ? answer.data : null));
    });
  }

  function webhookForm(current) {
    var url = h("input", { type: "url", required: true, value: current ? current.url : "",
                           placeholder: "https://example.com/sms-webhook" });
    var format = h("select", { id: "webhook-format" }, FORMATS.map(function (name) {
      return h("option", { value: name, text: t("format." + name),
                           selected: name === (current ? current.format : FORMATS[0]) });
    }));
    var chosen = current ? current.events : ["sms.received"];
    var boxes = EVENTS.map(function (name) {
      return h("input", { type: "checkbox", value: name, checked: chosen.indexOf(name) >= 0,
                          id: "event-" + name.replace(".", "-") });
    });
    var status = h("div", { "aria-live": "polite" });
    var secretBox = h("div");
    function save(rotate) {
      var events = boxes.filter(function (b) { return b.checked; })
        .map(function (b) { return b.value; });
      var json = { url: url.value.trim(), events: events, format: format.value };
      if (rotate) json.rotateSecret = true;
      call("PUT", "webhook", { json: json }).then(function (answer) {
        if (!answer.ok) { replace(status, notice("error", problem(answer))); return; }
        replace(status, notice("ok", t("webhook.saved")));
        if (answer.data.secret) replace(secretBox, secretCard(answer.data.secret));
      });
    }
    var form = h("form", { class: "card", id: "webhook-form", on: { submit: function (event) {
      event.preventDefault();
      save(false);
    } } }, field(t("webhook.url"), url), field(t("webhook.format"), format),
      h("fieldset", null, h("legend", { text: t("webhook.events") }),
        boxes.map(function (box) {
          return h("div", { class: "field check" }, box,
            h("label", { for: box.id, text: t("event." + box.value) }));
        })),
      h("button", { type: "submit", text: t("webhook.save") }));
    var extra = current ? [
      h("div", { class: "actions" },
        h("button", { type: "button", text: t("webhook.rotate"), on: { click: function () {
          if (window.confirm(t("webhook.confirmRotate"))) save(true);
        } } }),
        h("button", { type: "button", text: t("webhook.test"), on: { click: function () {
          call("POST", "webhook/test").then(function (answer) {
            replace(status, answer.ok ? notice("ok", t("webhook.testQueued"))
                                      : notice("error", problem(answer)));
          });
        } } }),
        h("button", { type: "button", class: "danger", text: t("webhook.delete"), on: {
          click: function () {
            if (!window.confirm(t("webhook.confirmDelete"))) return;
            call("DELETE", "webhook").then(function () { route(); });
          } } })),
      health(current.health)] : [];
    return [secretBox, form, status].concat(extra);
  }

  function secretCard(secret) {
    var value = h("input", { type: "text", readonly: true, value: secret, class: "secret",
                             dir: "ltr", "aria-label": t("webhook.secret") });
    var copied = h("span", { "aria-live": "polite" });
    return h("div", { class: "card secret-card", role: "region",
                      "aria-label": t("webhook.secret") },
      h("h2", { text: t("webhook.secret") }),
      notice("warning", t("webhook.secretOnce")), value,
      h("button", { type: "button", text: t("webhook.copy"), on: { click: function () {
        value.select();
        (navigator.clipboard ? navigator.clipboard.writeText(secret) : Promise.reject())
          .then(function () { copied.textContent = t("webhook.copied"); },
                function () { document.execCommand("copy"); copied.textContent = t("webhook.copied"); });
      } } }), copied);
  }

  function health(state) {
    return h("section", { class: "card" }, h("h2", { text: t("webhook.health") }),
      h("dl", { class: "details" },
        detail(t("webhook.lastSuccess"), formatTime(state.lastSuccessAt)),
        detail(t("webhook.lastFailure"), formatTime(state.lastFailureAt)),
        state.lastFailureReason ? detail(t("field.reason"), state.lastFailureReason) : null,
        detail(t("webhook.failures"), String(state.consecutiveFailures)),
        detail(t("webhook.deadLettered"), String(state.deadLettered))));
  }

  // ---- devices ------------------------------------------------------------------------

  function devicesPage(main) {
    var body = h("div", null, h("p", { class: "loading", text: t("loading") }));
    replace(main, title(t("devices.title")), body);
    call("GET", "devices").then(function (answer) {
      if (!answer.ok) { replace(body, notice("error", problem(answer))); return; }
      var devices = answer.data.devices;
      if (!devices.length) { replace(body, h("p", { class: "empty", text: t("devices.none") }));
                             return; }
      replace(body, h("table", null, h("thead", null, h("tr", null,
        ["devices.name", "devices.state", "devices.lastSeen", "devices.battery",
         "devices.signal", "devices.lines"].map(function (k) {
          return h("th", { scope: "col", text: t(k) });
        }))), h("tbody", null, devices.map(function (d) {
          return h("tr", null, h("td", null, d.name || d.deviceId, h("br"),
              h("small", { text: d.deviceId })),
            h("td", null, h("span", { class: "badge " + (d.online ? "online" : "offline"),
                                      text: t(d.online ? "devices.online" : "devices.offline") })),
            h("td", { text: formatTime(d.lastSeenAt) }),
            h("td", { text: d.batteryPercent === null ? "—" : d.batteryPercent + " %" }),
            h("td", { text: d.signalPercent === null ? "—" : d.signalPercent + " %" }),
            h("td", null, h("ul", { class: "lines" }, (d.lines || []).map(function (l) {
              return h("li", null, h("span", { dir: "ltr", text: "SIM " + l.slot + " · " +
                l.number + (l.operator ? " · " + l.operator : "") }), lineState(l));
            }))));
        }))));
    });
  }

  var LINE_STATES = { active: "devices.line.active", paused: "devices.line.paused",
                      capped: "devices.line.capped", down: "devices.line.down" };

  // A line's state as its bridge reported it: the SIM guard's pause, a cap, a dead modem.
  function lineState(line) {
    if (!line.state) { return null; }
    var detail = [line.stateReason, line.resumesAt ?
      t("devices.line.resumes") + " " + formatTime(line.resumesAt) : null]
      .filter(Boolean).join(" · ");
    return h("span", null, " ", h("span", { class: "badge line-" + line.state,
                                             text: t(LINE_STATES[line.state]) }),
             detail ? h("small", { class: "line-reason", text: " " + detail }) : null);
  }

  // ---- start --------------------------------------------------------------------------

  document.querySelector(".skip").addEventListener("click", function (event) {
    event.preventDefault(); // the hash is the page: focus the content instead
    document.getElementById("main").focus();
  });
  var saved = localStorage.getItem(LANGUAGE);
  loadLanguage(LANGUAGES.indexOf(saved) >= 0 ? saved : "fr").then(function () {
    window.addEventListener("hashchange", route);
    route();
  });
})();
