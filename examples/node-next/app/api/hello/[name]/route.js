import os from 'node:os';

export const dynamic = 'force-dynamic';

export async function GET(request, { params }) {
  const { name } = await params;
  console.log(`request method=GET path=/api/hello/${name}`);
  return Response.json({ hello: name, framework: 'next', host: os.hostname(), env: process.env.NODE_ENV });
}
