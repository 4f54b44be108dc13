/** @type {import('next').NextConfig} */
const nextConfig = {
  // the production way to ship a Next server: .next/standalone holds server.js and only the node_modules it traces
  output: 'standalone',
  // no telemetry, no X-Powered-By
  poweredByHeader: false,
};

export default nextConfig;
