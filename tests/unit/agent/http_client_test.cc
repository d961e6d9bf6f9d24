// The shared libcurl client (userspace/agent/http_client.cc): base64,
// percent-encoding, requests, streams and timeouts.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "agent/http_client.h"
#include "common/fd.h"

namespace skiff::agent {
namespace {

using namespace std::chrono_literals;

TEST(HttpClientTest, Base64) {
    EXPECT_EQ(base64_decode("aGVsbG8=").value(), "hello");
    EXPECT_EQ(base64_decode("aGVs\nbG8h").value(), "hello!");  // line breaks are ignored
    EXPECT_EQ(base64_decode("aA==").value(), "h");
    EXPECT_EQ(base64_decode("").value(), "");
    EXPECT_FALSE(base64_decode("abc").ok());
    EXPECT_FALSE(base64_decode("a!c=").ok());
}

TEST(HttpClientTest, Base64Encode) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("h"), "aA==");
    EXPECT_EQ(base64_encode("he"), "aGU=");
    EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
    EXPECT_EQ(base64_encode("hello!"), "aGVsbG8h");
    EXPECT_EQ(base64_encode("/skiff/nodes/"), "L3NraWZmL25vZGVzLw==");
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);  // NULs and high bytes included
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{100}, size_t{256}}) {
        std::string in = bytes.substr(0, n);
        EXPECT_EQ(base64_decode(base64_encode(in)).value(), in) << n;
    }
    EXPECT_EQ(base64_encode(std::string(1, '\0')), "AA==");
}

TEST(HttpClientTest, UrlEscape) {
    EXPECT_EQ(url_escape(""), "");
    EXPECT_EQ(url_escape("aZ09-_.~"), "aZ09-_.~");
    EXPECT_EQ(url_escape("!a b,c/d"), "%21a%20b%2Cc%2Fd");
}

struct Server {
    httplib::Server svr;
    std::thread th;
    int port = -1;
    void start() {
        port = svr.bind_to_any_port("127.0.0.1");
        th = std::thread([this] { svr.listen_after_bind(); });
        while (!svr.is_running()) std::this_thread::sleep_for(1ms);  // stop() before listen would be lost
    }
    ~Server() {
        svr.stop();
        if (th.joinable()) th.join();
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

TEST(HttpClientTest, PostsBodyAndHeaders) {
    Server s;
    std::string seen_body, seen_type, seen_expect;
    s.svr.Post("/echo", [&](const httplib::Request& q, httplib::Response& r) {
        seen_body = q.body;
        seen_type = q.get_header_value("Content-Type");
        seen_expect = q.get_header_value("Expect");
        r.status = 201;
        r.set_content("made", "text/plain");
    });
    s.start();
    HttpClientRequest q;
    q.method = "POST";
    q.url = s.url("/echo");
    q.headers = {"Content-Type: application/json"};
    q.body = std::string(4000, 'x');  // large enough that curl would otherwise send Expect: 100-continue
    auto r = http_request(q);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 201);
    EXPECT_EQ(r->body, "made");
    EXPECT_EQ(seen_body, q.body);
    EXPECT_EQ(seen_type, "application/json");
    EXPECT_EQ(seen_expect, "");
}

TEST(HttpClientTest, RefusedIsAnError) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));  // bound, never listening: refused
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    HttpClientRequest q;
    q.url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
    auto r = http_request(q);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ECONNREFUSED) << r.error().message;
}

TEST(HttpClientTest, StalledServerTimesOut) {
    // Listens (so connect succeeds through the backlog) but never answers.
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(fd.get(), 8), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    HttpClientRequest q;
    q.method = "POST";
    q.url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
    q.stall_timeout = 1s;
    q.timeout = 30s;
    auto t0 = std::chrono::steady_clock::now();
    auto r = http_request(q);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ETIMEDOUT) << r.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(HttpClientTest, StreamDeliversChunksAndStopsOnRequest) {
    Server s;
    std::atomic<bool> closing{false};
    s.svr.Post("/stream", [&](const httplib::Request&, httplib::Response& r) {
        r.set_chunked_content_provider("application/json", [&, n = 0](size_t, httplib::DataSink& sink) mutable {
            if (n++ < 3 && !sink.write("{}\n", 3)) return false;
            std::this_thread::sleep_for(20ms);
            if (closing) sink.done();
            return true;
        });
    });
    s.start();
    std::stop_source stop;
    std::string got;
    HttpClientRequest q;
    q.method = "POST";
    q.url = s.url("/stream");
    q.timeout = 0ms;
    q.stop = stop.get_token();
    q.on_data = [&](std::string_view chunk) {
        got.append(chunk);
        if (got.size() == 9) stop.request_stop();  // from inside; another thread works too
        return true;
    };
    auto t0 = std::chrono::steady_clock::now();
    auto r = http_request(q);
    closing = true;
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(got, "{}\n{}\n{}\n");
    EXPECT_TRUE(r->body.empty());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace skiff::agent
