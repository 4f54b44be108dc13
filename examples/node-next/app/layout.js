export const metadata = { title: 'node-next', description: 'a Next.js app in a unikernel-style VM' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
