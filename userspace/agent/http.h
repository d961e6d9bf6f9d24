// A minimal HTTP/1.0 server for the agent's health and metrics endpoints.
// One thread, one request per connection; only GET.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/result.h"

namespace skiff::agent {

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

using HttpHandler = std::function<HttpResponse(const std::string& path)>;

struct ListenAddr {
    std::string host;  // IPv4 literal
    int port = 0;
};
// "HOST:PORT" with an IPv4 host and a decimal port 0-65535, nothing else.
Result<ListenAddr> parse_listen(const std::string& listen);

class HttpServer {
public:
    // listen: "HOST:PORT" (IPv4). Port 0 picks a free port.
    static Result<std::unique_ptr<HttpServer>> start(const std::string& listen, HttpHandler handler);
    ~HttpServer();
    int port() const { return port_; }

private:
    HttpServer(UniqueFd fd, int port, HttpHandler h) : fd_(std::move(fd)), port_(port), handler_(std::move(h)) {}
    void serve();
    UniqueFd fd_;
    int port_;
    HttpHandler handler_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace skiff::agent
