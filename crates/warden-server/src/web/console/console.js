// Warden console: the one script the console pages load (CSP script-src 'self').
// A button with data-copy="ID" copies the text of the element with that id.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) {
        button.textContent = "Select the key and copy it";
        return;
      }
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Select the key and copy it"; }
      );
    });
  });
});
