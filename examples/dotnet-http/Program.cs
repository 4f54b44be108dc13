// dotnet-http: a tiny HTTP server (System.Net.HttpListener) for the unikctl dotnet pack. It logs one line per
// request to stdout, which reaches `unikctl logs` through the VM's serial console.
using System.Diagnostics;
using System.Net;
using System.Text;

var port = Environment.GetEnvironmentVariable("PORT") ?? "8080";
var greeting = Environment.GetEnvironmentVariable("GREETING") ?? "hello from a unikctl VM";

using var listener = new HttpListener();
// "+" binds every IPv4 address (0.0.0.0): the guest kernel has no IPv6
listener.Prefixes.Add($"http://+:{port}/");
listener.Start();
Console.WriteLine($"dotnet-http listening on 0.0.0.0:{port}");

while (true)
{
    var context = await listener.GetContextAsync();
    _ = Task.Run(() => Handle(context));
}

void Handle(HttpListenerContext context)
{
    var clock = Stopwatch.StartNew();
    var request = context.Request;
    var path = request.Url?.AbsolutePath ?? "/";
    try
    {
        var body = Encoding.UTF8.GetBytes($"{greeting} (dotnet, path {path})\n");
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.ContentLength64 = body.Length;
        context.Response.OutputStream.Write(body);
        context.Response.Close();
        Console.WriteLine($"request method={request.HttpMethod} path={path} remote={request.RemoteEndPoint} status=200 duration={clock.Elapsed.TotalMilliseconds:F1}ms");
    }
    catch (Exception e)
    {
        Console.Error.WriteLine($"dotnet-http: {request.HttpMethod} {path} failed: {e.Message}");
        context.Response.Abort();
    }
}
