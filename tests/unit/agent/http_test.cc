// The agent's minimal HTTP server (userspace/agent/http.cc), spoken to over
// a plain TCP socket on 127.0.0.1.
#include "agent/http.h"
#include "common/fd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/agent.h"

namespace skiff::agent {
namespace {

// Sends `request` in the given pieces and reads until the server closes.
std::string exchange(int port, const std::vector<std::string>& pieces) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return "socket failed";
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        return std::string("connect failed: ") + std::strerror(errno);
    for (const auto& p : pieces) {
        if (::send(fd.get(), p.data(), p.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(p.size())) return "send failed";
        if (pieces.size() > 1) ::usleep(20000);
    }
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string get(int port, const std::string& path) {
    return exchange(port, {"GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n"});
}

std::string status_line(const std::string& resp) { return resp.substr(0, resp.find("\r\n")); }

std::string body_of(const std::string& resp) {
    auto p = resp.find("\r\n\r\n");
    return p == std::string::npos ? "" : resp.substr(p + 4);
}

struct Recorder {
    std::mutex mu;
    std::vector<std::string> paths;
    HttpHandler handler() {
        return [this](const std::string& path) {
            {
                std::lock_guard g(mu);
                paths.push_back(path);
            }
            if (path == "/x") return HttpResponse{200, "text/plain; charset=utf-8", "hello from x\n"};
            if (path == "/down") return HttpResponse{503, "application/json", "{\"ok\":false}\n"};
            return HttpResponse{404, "text/plain", "not found\n"};
        };
    }
    std::vector<std::string> seen() {
        std::lock_guard g(mu);
        return paths;
    }
};

TEST(HttpServerTest, GetReturnsHandlerBodyAndStatusLine) {
    Recorder rec;
    auto s = HttpServer::start("127.0.0.1:0", rec.handler());
    ASSERT_TRUE(s.ok()) << s.error().message;
    int port = (*s)->port();
    ASSERT_GT(port, 0);
    std::string resp = get(port, "/x");
    EXPECT_EQ(status_line(resp), "HTTP/1.1 200 OK") << resp;
    EXPECT_NE(resp.find("\r\nContent-Type: text/plain; charset=utf-8\r\n"), std::string::npos) << resp;
    EXPECT_NE(resp.find("\r\nContent-Length: 13\r\n"), std::string::npos) << resp;
    EXPECT_EQ(body_of(resp), "hello from x\n");
    EXPECT_EQ(rec.seen(), std::vector<std::string>{"/x"});
}

TEST(HttpServerTest, HandlerStatusIsPassedThrough) {
    Recorder rec;
    auto s = HttpServer::start("127.0.0.1:0", rec.handler());
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::string down = get((*s)->port(), "/down");
    EXPECT_EQ(status_line(down), "HTTP/1.1 503 Service Unavailable") << down;
    EXPECT_NE(down.find("Content-Type: application/json"), std::string::npos);
    EXPECT_EQ(body_of(down), "{\"ok\":false}\n");
    std::string missing = get((*s)->port(), "/elsewhere");
    EXPECT_EQ(status_line(missing), "HTTP/1.1 404 Not Found") << missing;
}

TEST(HttpServerTest, PostIs405AndNotHandled) {
    Recorder rec;
    auto s = HttpServer::start("127.0.0.1:0", rec.handler());
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::string resp = exchange((*s)->port(), {"POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"});
    EXPECT_EQ(status_line(resp), "HTTP/1.1 405 Method Not Allowed") << resp;
    EXPECT_TRUE(rec.seen().empty());
    // The server still answers afterwards.
    EXPECT_EQ(status_line(get((*s)->port(), "/x")), "HTTP/1.1 200 OK");
}

TEST(HttpServerTest, RequestSplitAcrossPackets) {
    Recorder rec;
    auto s = HttpServer::start("127.0.0.1:0", rec.handler());
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::string resp = exchange((*s)->port(), {"GET /", "x HTTP/1.0\r\n", "Host: a\r\n", "\r\n"});
    EXPECT_EQ(status_line(resp), "HTTP/1.1 200 OK") << resp;
    EXPECT_EQ(rec.seen(), std::vector<std::string>{"/x"});
}

TEST(HttpServerTest, ManySequentialRequests) {
    Recorder rec;
    auto s = HttpServer::start("127.0.0.1:0", rec.handler());
    ASSERT_TRUE(s.ok()) << s.error().message;
    for (int i = 0; i < 20; ++i) ASSERT_EQ(body_of(get((*s)->port(), "/x")), "hello from x\n") << i;
    EXPECT_EQ(rec.seen().size(), 20u);
}

TEST(HttpServerTest, BadListenAddresses) {
    Recorder rec;
    for (const char* listen :
         {"", "9964", "localhost:9964", "127.0.0.1:70000", "127.0.0.1:-1", "::1:9964", "127.0.0.256:80"}) {
        auto s = HttpServer::start(listen, rec.handler());
        EXPECT_FALSE(s.ok()) << "'" << listen << "' accepted";
        if (!s.ok()) {
            EXPECT_EQ(s.error().code, EINVAL) << listen;
        }
    }
}

// Regression (fixed): the port is parsed with std::atoi and only range-checked, so a
// non-numeric or partly numeric port ("127.0.0.1:abc", "127.0.0.1:0x1f")
// silently becomes port 0 and the server listens on a random ephemeral port
// instead of rejecting the configuration ("127.0.0.1:9964abc" would bind
// 9964 the same way).
TEST(HttpServerTest, NonNumericPortIsRejected) {
    Recorder rec;
    for (const char* listen : {"127.0.0.1:abc", "127.0.0.1:0x1f", "127.0.0.1:"}) {
        auto s = HttpServer::start(listen, rec.handler());
        EXPECT_FALSE(s.ok()) << "'" << listen << "' accepted, listening on port " << (s.ok() ? (*s)->port() : -1);
    }
}

TEST(HttpServerTest, PortInUseIsAnError) {
    Recorder rec;
    auto a = HttpServer::start("127.0.0.1:0", rec.handler());
    ASSERT_TRUE(a.ok()) << a.error().message;
    auto b = HttpServer::start("127.0.0.1:" + std::to_string((*a)->port()), rec.handler());
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().code, EADDRINUSE);
}

TEST(HttpServerTest, StopsPromptlyAndReleasesThePort) {
    Recorder rec;
    int port = 0;
    {
        auto s = HttpServer::start("127.0.0.1:0", rec.handler());
        ASSERT_TRUE(s.ok()) << s.error().message;
        port = (*s)->port();
        auto t0 = std::chrono::steady_clock::now();
        s = Error{0, "drop"};  // destroys the server
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    }
    auto again = HttpServer::start("127.0.0.1:" + std::to_string(port), rec.handler());
    EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST(HttpServerTest, ServesTheAgentsEndpoints) {
    AgentConfig cfg;
    cfg.node_name = "node-a";
    cfg.pin_path = "/nonexistent/skiff-unit-pins";
    Agent agent(cfg, nullptr, nullptr, nullptr);
    auto s = HttpServer::start("127.0.0.1:0", [&agent](const std::string& p) { return agent.handle_http(p); });
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::string h = get((*s)->port(), "/healthz");
    EXPECT_EQ(status_line(h), "HTTP/1.1 503 Service Unavailable") << h;
    EXPECT_NE(body_of(h).find("\"node\":\"node-a\""), std::string::npos) << h;
    std::string m = get((*s)->port(), "/metrics");
    EXPECT_EQ(status_line(m), "HTTP/1.1 200 OK");
    EXPECT_NE(body_of(m).find("skiff_agent_reconciles_total{result=\"ok\"} 0\n"), std::string::npos) << m;
    EXPECT_EQ(status_line(get((*s)->port(), "/nope")), "HTTP/1.1 404 Not Found");
}

}  // namespace
}  // namespace skiff::agent
