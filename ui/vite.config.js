import { svelte } from "@sveltejs/vite-plugin-svelte";
import tailwindcss from "@tailwindcss/vite";
import { defineConfig } from "vite";

// `npm run dev` proxies the API and the feed to a gateway on its default port.
const gateway = process.env.SLIPSTREAM_GATEWAY ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [
    svelte({
      onwarn(warning, handler) {
        // a compiler warning (accessibility included) fails the build
        throw new Error(`${warning.filename}:${warning.start?.line}: ${warning.message}`);
      },
    }),
    tailwindcss(),
  ],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: {
    proxy: {
      "/api": gateway,
      "/export": gateway,
      "/ws": { target: gateway.replace(/^http/, "ws"), ws: true },
    },
  },
});
