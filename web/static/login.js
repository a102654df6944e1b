// Sign-in page: posts the credentials as JSON and opens the panel on success.
"use strict";
(function () {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const response = await fetch("/api/v1/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          username: document.getElementById("username").value,
          password: document.getElementById("password").value,
        }),
      });
      if (response.ok) {
        window.location.assign("/");
        return;
      }
      let message = "Sign-in failed (" + response.status + ")";
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (_) { /* not JSON */ }
      error.textContent = message.charAt(0).toUpperCase() + message.slice(1);
      error.hidden = false;
    } catch (_) {
      error.textContent = "The server cannot be reached.";
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
})();
