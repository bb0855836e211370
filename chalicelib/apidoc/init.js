// Relative URL: works at the root locally and under an API Gateway stage prefix.
window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui" });
