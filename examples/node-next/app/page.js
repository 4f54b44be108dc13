import Link from 'next/link';

export default function Home() {
  return (
    <main>
      <h1>node-next</h1>
      <p>A Next.js app served by the standalone server.js.</p>
      <p><Link href="/hello/world">say hello</Link></p>
    </main>
  );
}
