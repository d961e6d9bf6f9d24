#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

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

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen, HttpHandler handler) {
    SKIFF_ASSIGN_OR_RETURN(ListenAddr la, parse_listen(listen));
    auto host = Ipv4::parse(la.host);
    int port = la.port;
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::errno_("socket");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = host->be();
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return Error::errno_("bind " + listen);
    if (::listen(fd.get(), 16) != 0) return Error::errno_("listen " + listen);
    socklen_t len = sizeof(sa);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    std::unique_ptr<HttpServer> s(new HttpServer(std::move(fd), ntohs(sa.sin_port), std::move(handler)));
    s->thread_ = std::thread([p = s.get()] { p->serve(); });
    return s;
}

HttpServer::~HttpServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

static const char* reason(int status) {
    switch (status) {
        case 200: return "OK";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

void HttpServer::serve() {
    while (!stop_) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c.valid()) continue;
        timeval tv{2, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        std::string req;
        char buf[2048];
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
            ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
            if (n <= 0) break;
            req.append(buf, static_cast<size_t>(n));
        }
        HttpResponse resp;
        auto sp1 = req.find(' '), sp2 = req.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
        if (sp1 == std::string::npos || sp2 == std::string::npos) continue;
        if (req.compare(0, sp1, "GET") != 0) resp = {405, "text/plain", "only GET\n"};
        else resp = handler_(req.substr(sp1 + 1, sp2 - sp1 - 1));
        std::string out = "HTTP/1.0 " + std::to_string(resp.status) + " " + reason(resp.status) +
                          "\r\nContent-Type: " + resp.content_type +
                          "\r\nContent-Length: " + std::to_string(resp.body.size()) + "\r\nConnection: close\r\n\r\n" +
                          resp.body;
        size_t off = 0;
        while (off < out.size()) {
            ssize_t n = ::send(c.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL);
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
    }
}

}  // namespace skiff::agent
