// Builds src/ into dist/ (committed). Whitenoise serves dist/ at the site root (WHITENOISE_ROOT), so base is "/".
import { defineConfig } from 'vite'

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 4096,
  },
})
