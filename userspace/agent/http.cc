#include "http.h"

#include <sys/socket.h>

#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/ipv4.h"

namespace skiff::agent {

Result<ListenAddr> parse_listen(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return Error::invalid("listen address '" + listen + "' is not HOST:PORT");
    auto host = Ipv4::parse(listen.substr(0, colon));
    if (!host) return Error::invalid("listen address '" + listen + "': " + host.error().message);
    std::string ps = listen.substr(colon + 1);
    int port = -1;
    auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ps.empty() || ec != std::errc{} || p != ps.data() + ps.size() || port < 0 || port > 65535)
        return Error::invalid("listen address '" + listen + "': bad port '" + ps + "'");
    return ListenAddr{host->str(), port};
}

struct HttpServer::Impl {
    httplib::Server server;
    std::thread thread;
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl, int port) : impl_(std::move(impl)), port_(port) {}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen, HttpHandler handler) {
    SKIFF_ASSIGN_OR_RETURN(ListenAddr la, parse_listen(listen));
    auto impl = std::make_unique<Impl>();
    auto& srv = impl->server;
    // SO_REUSEADDR only: the library's default SO_REUSEPORT would let a
    // second agent bind the same address silently.
    srv.set_socket_options([](int sock) {
        int one = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    });
    srv.Get(".*", [h = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
        HttpResponse r = h(req.path);
        res.status = r.status;
        res.set_content(r.body, r.content_type.c_str());
    });
    auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
        res.status = 405;
        res.set_content("only GET\n", "text/plain");
    };
    srv.Post(".*", not_allowed);
    srv.Put(".*", not_allowed);
    srv.Patch(".*", not_allowed);
    srv.Delete(".*", not_allowed);
    srv.Options(".*", not_allowed);
    errno = 0;
    int port = la.port;
    if (port == 0)
        port = srv.bind_to_any_port(la.host);
    else if (!srv.bind_to_port(la.host, port))
        port = -1;
    if (port <= 0)
        return Error{errno ? errno : EADDRINUSE, "bind " + listen + ": " + std::strerror(errno ? errno : EADDRINUSE)};
    std::unique_ptr<HttpServer> s(new HttpServer(std::move(impl), port));
    s->impl_->thread = std::thread([p = &s->impl_->server] { p->listen_after_bind(); });
    // Serving once start() returns; and stop() is only heard by a server
    // that runs (one stopped before would serve on, never to be joined).
    while (!s->impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return s;
}

HttpServer::~HttpServer() {
    impl_->server.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace skiff::agent
