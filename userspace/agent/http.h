// The agent's health and metrics endpoints over HTTP (cpp-httplib); only GET,
// other methods get 405.
#pragma once

#include <functional>
#include <string>
#include <memory>

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
    struct Impl;
    HttpServer(std::unique_ptr<Impl> impl, int port);
    std::unique_ptr<Impl> impl_;
    int port_;
};

}  // namespace skiff::agent
