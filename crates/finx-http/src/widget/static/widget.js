// Optional niceties; every page works without this script.
(function () {
  "use strict";
  var framed = window.self !== window.top;
  // In an iframe, tell the server so the last step answers with a postMessage page.
  if (framed) {
    document.querySelectorAll("form[method=post]").forEach(function (f) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = "iframe"; i.value = "1";
      f.appendChild(i);
    });
  }
  // The "fetching your data" step continues by itself.
  var auto = document.querySelector("form[data-auto-submit]");
  if (auto) { auto.submit(); }
  // The last step: hand the result to the customer's page.
  var result = document.getElementById("finx-result");
  if (result) {
    var data = JSON.parse(result.textContent);
    if (framed) {
      window.parent.postMessage(
        { location: data.location, query: data.query, url: data.url },
        data.origin
      );
    } else {
      window.location.replace(data.url);
    }
  }
})();
