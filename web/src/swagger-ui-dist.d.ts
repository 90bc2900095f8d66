// swagger-ui-dist ships no type declarations; the docs page uses only this call.
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const SwaggerUIBundle: (options: { url: string; dom_id: string; deepLinking?: boolean }) => unknown;
  export default SwaggerUIBundle;
}
