// receiver inspector: copy buttons, secret reveal, live deliveries, erase confirmation.
// Served by the service itself (the CSP allows no inline script); the pages work without it.
"use strict";

(function () {
  function byId(id) { return document.getElementById(id); }

  function say(text) {
    var status = byId("live-status") || byId("copy-status");
    if (!status) {
      status = document.createElement("span");
      status.id = "copy-status";
      status.className = "visually-hidden";
      status.setAttribute("role", "status");
      document.body.appendChild(status);
    }
    status.textContent = text;
  }

  // Copy buttons: data-copy names the element whose text is copied.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = byId(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent;
    var label = button.textContent;
    function done(ok) {
      button.textContent = ok ? "Copied" : "Select and copy";
      say(ok ? "Copied to the clipboard" : "Copying failed: select the text and copy it");
      window.setTimeout(function () { button.textContent = label; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      done(ok);
    }
  });

  // Reveal buttons: data-reveal / data-conceal list the ids to show / hide.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-reveal]");
    if (!button) { return; }
    var shown = button.getAttribute("aria-expanded") === "true";
    (button.getAttribute("data-reveal") || "").split(" ").forEach(function (id) {
      var el = byId(id); if (el) { el.hidden = shown; }
    });
    (button.getAttribute("data-conceal") || "").split(" ").forEach(function (id) {
      var el = byId(id); if (el) { el.hidden = !shown; }
    });
    button.setAttribute("aria-expanded", shown ? "false" : "true");
    button.textContent = shown ? "Reveal" : "Hide";
  });

  // Erase: the button stays disabled until the lead id is typed exactly (the server checks too).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    var input = form.querySelector("input[name=confirm]");
    var button = form.querySelector("button[type=submit]");
    var expected = form.getAttribute("data-confirm");
    function check() { button.disabled = input.value.trim() !== expected; }
    input.addEventListener("input", check);
    check();
  });

  // Live deliveries: poll for rows newer than the newest shown, and put them on top.
  var live = byId("live");
  var rows = byId("delivery-rows");
  if (live && rows) {
    var timer = null;
    var newest = function () {
      var first = rows.querySelector("tr[data-id]");
      return first ? first.getAttribute("data-id") : "";
    };
    var poll = function () {
      var url = live.getAttribute("data-url") + "&after=" + encodeURIComponent(newest());
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401) { throw new Error("signed out"); }
          if (!response.ok) { throw new Error("status " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var template = document.createElement("template");
          template.innerHTML = html;  // rows rendered (and escaped) by the server
          var fresh = template.content.querySelectorAll("tr");
          if (fresh.length) {
            fresh.forEach(function (tr) { tr.classList.add("fresh"); });
            rows.insertBefore(template.content, rows.firstChild);
            var empty = byId("empty"); if (empty) { empty.hidden = true; }
            say(fresh.length + (fresh.length === 1 ? " new delivery" : " new deliveries"));
          }
        })
        .catch(function (error) {
          say("Live updates stopped: " + error.message + ". Reload the page.");
          live.checked = false;
          stop();
        });
    };
    var stop = function () { if (timer) { window.clearInterval(timer); timer = null; } };
    live.addEventListener("change", function () {
      if (live.checked) {
        say("Live: watching for new deliveries");
        poll();
        timer = window.setInterval(poll, 2000);
      } else {
        stop();
        say("Live updates off");
      }
    });
  }
})();
