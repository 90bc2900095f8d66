// /docs: the REST surface's OpenAPI document (generated from the protos by
// tools/gen_openapi.py and served by the gateway at /openapi.json), rendered by
// Swagger UI. "Try it out" calls go to the same gateway.
import "swagger-ui-dist/swagger-ui.css";
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
});
