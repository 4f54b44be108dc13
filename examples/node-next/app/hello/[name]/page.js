import os from 'node:os';

// rendered on each request (the route reads its parameter and the host at request time)
export const dynamic = 'force-dynamic';

export default async function Hello({ params }) {
  const { name } = await params;
  console.log(`page /hello/${name} rendered`);
  return (
    <main>
      <h1>Hello, {name}!</h1>
      <p>Server-rendered by Next.js on {os.hostname()} with node {process.version}.</p>
    </main>
  );
}
