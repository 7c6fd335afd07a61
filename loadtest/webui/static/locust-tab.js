/* Shows the Cyrus server charts inside Locust's own "Cyrus server" tab.
 *
 * Locust's UI (React) renders an extended tab as a table only (here: the gate rules, filled from
 * /stats/requests). This script, added to Locust's index page by loadtest.webui, puts a frame with
 * the charts ({base}/cyrus/?embed=1) above that table while the tab is selected. The frame lives
 * in a node of its own, removed when another tab is selected (checked twice a second). */
(function () {
  "use strict";
  const script = document.currentScript;
  const title = (script && script.dataset.tabTitle) || "Cyrus server";
  const pageUrl = new URL("../", script ? script.src : location.href).href; // {base}/cyrus/
  const PANEL_ID = "cyrus-server-panel";
  // The target comes from a deployment: Locust's Host field and its notice only confuse.
  const hideHost = !!(script && script.dataset.hideHost);
  const STATUS_COLOURS = { pass: "#15803d", fail: "#b91c1c", inconclusive: "#a16207", waiting: "#667085" };
  const SHAPE_NOTE_ID = "cyrus-shape-note";

  function selectedTab() {
    const tab = document.querySelector('[role="tab"][aria-selected="true"]');
    return tab ? tab.textContent.trim() : null;
  }

  function isDark() {
    const rgb = getComputedStyle(document.body).backgroundColor.match(/\d+/g);
    if (!rgb) return false;
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 128;
  }

  function sync() {
    let panel = document.getElementById(PANEL_ID);
    const tabs = document.querySelector(".MuiTabs-root");
    if (!tabs || selectedTab() !== title) {
      if (panel) panel.remove();
      return;
    }
    const anchor = tabs.parentElement; // the box holding the tab bar; panels follow it
    if (!panel) {
      panel = document.createElement("div");
      panel.id = PANEL_ID;
      panel.style.margin = "12px 0";
      const links = document.createElement("div");
      links.style.cssText = "font-size: 13px; margin-bottom: 6px; text-align: right";
      const open = document.createElement("a");
      open.href = pageUrl;
      open.target = "_blank";
      open.textContent = "open the server page on its own ↗";
      open.style.color = "inherit";
      links.appendChild(open);
      const frame = document.createElement("iframe");
      frame.id = "cyrus-server-frame";
      frame.title = "Cyrus server charts";
      frame.src = pageUrl + "?embed=1&theme=" + (isDark() ? "dark" : "light");
      frame.style.cssText = "width: 100%; height: 720px; border: 0; display: block";
      panel.appendChild(links);
      panel.appendChild(frame);
    }
    if (panel.previousElementSibling !== anchor) anchor.parentNode.insertBefore(panel, anchor.nextSibling);
  }

  function fitFrame() {
    const frame = document.getElementById("cyrus-server-frame");
    try {
      const doc = frame && frame.contentDocument;
      if (doc && doc.body) {
        const h = Math.ceil(doc.body.getBoundingClientRect().height) + 4;
        if (h > 50 && Math.abs(frame.clientHeight - h) > 4) frame.style.height = h + "px";
      }
    } catch (e) { /* another origin: keep the fixed height */ }
  }

  // Locust's start form: hide Host when the deployment names the targets; say why the user
  // fields are greyed out when a load shape decides them. Re-applied on every tick, as React
  // may render the form again.
  function adjustForm() {
    const form = document.querySelector("form");
    if (!form) return;
    if (hideHost) {
      const host = form.querySelector('input[name="host"]');
      const control = host && host.closest(".MuiFormControl-root, .MuiTextField-root");
      if (control) control.style.display = "none";
      for (const alert of form.querySelectorAll(".MuiAlert-root")) {
        if (/host attribute/i.test(alert.textContent)) alert.style.display = "none";
      }
    }
    const users = form.querySelector('input[name="userCount"]');
    const control = users && users.closest(".MuiFormControl-root, .MuiTextField-root");
    if (users && users.disabled && control && !document.getElementById(SHAPE_NOTE_ID)) {
      const note = document.createElement("div");
      note.id = SHAPE_NOTE_ID;
      note.textContent = "Users and ramp-up are set by the locustfile's load shape (its phases): " +
        "change them with the scenario's own options further down (groups Users and Run).";
      note.style.cssText = "font-size: 13px; color: #667085; margin: -6px 0 12px";
      control.parentNode.insertBefore(note, control);
    }
  }

  // The custom parameters: in groups (target, users, behaviour, run) with labels in words and
  // the help under each field. Only styles and added nodes: CSS order sorts the fields into
  // their groups (React keeps its own nodes where they are), group titles are appended.
  let layout = null, layoutAsked = false;
  function groupParameters() {
    if (!layout) {
      if (!layoutAsked) {
        layoutAsked = true;
        fetch(pageUrl + "form", { credentials: "same-origin" })
          .then((r) => r.ok ? r.json() : null).then((d) => { layout = d; }).catch(() => {});
      }
      return;
    }
    const probe = document.querySelector('form [name="imapDisconnect"], form [name="deployment"]');
    if (!probe) return;
    let field = probe;
    while (field.parentElement && !field.parentElement.contains(document.querySelector('form [name="imapHost"]')) ) {
      field = field.parentElement;
    }
    const box = field.parentElement; // the element holding every custom parameter
    if (!box || box.tagName === "FORM") return;
    box.style.display = "flex";
    box.style.flexDirection = "column";
    layout.groups.forEach((group, gi) => {
      const titleId = "cyrus-form-group-" + gi;
      let title = document.getElementById(titleId);
      if (!title) {
        title = document.createElement("div");
        title.id = titleId;
        title.textContent = group.title;
        title.style.cssText = "font-weight: 700; font-size: 15px; margin: 14px 0 8px; " +
          "border-bottom: 1px solid rgba(128,128,128,0.35); padding-bottom: 2px";
        box.appendChild(title);
      }
      title.style.order = String(gi * 100);
      group.options.forEach((option, oi) => {
        const input = box.querySelector('[name="' + option.field + '"]');
        if (!input) return;
        let item = input;
        while (item.parentElement && item.parentElement !== box) item = item.parentElement;
        if (item.parentElement !== box) return;
        item.style.order = String(gi * 100 + oi + 1);
        if (option.label) {
          // A text field's label, or a checkbox's text (never the <label> around a checkbox).
          const label = item.querySelector(".MuiFormControlLabel-label") ||
            (item.querySelector("input[type=checkbox]") ? null : item.querySelector("label"));
          if (label && label.textContent !== option.label) label.textContent = option.label;
          const notch = item.querySelector("legend span");
          if (notch && notch.textContent !== option.label) notch.textContent = option.label;
        }
        if (option.help && !item.querySelector(".cyrus-help")) {
          const help = document.createElement("div");
          help.className = "cyrus-help";
          help.textContent = option.help;
          help.style.cssText = "font-size: 12px; opacity: 0.7; margin: 3px 2px 10px";
          item.appendChild(help);
        }
      });
    });
  }

  // Locust's table of the gate rules: colour the status cells.
  function colourGate() {
    const panel = document.getElementById(PANEL_ID);
    if (!panel) return;
    for (const row of document.querySelectorAll("table tbody tr")) {
      const cell = row.cells[0];
      const colour = cell && STATUS_COLOURS[cell.textContent.trim()];
      if (colour && cell.style.color !== colour) {
        cell.style.color = colour;
        cell.style.fontWeight = "700";
        cell.style.textTransform = "uppercase";
      }
    }
  }

  setInterval(function () { sync(); fitFrame(); adjustForm(); groupParameters(); colourGate(); }, 500);
})();
