// A small HTTP client on libcurl, shared by the Kubernetes and etcd clients:
// one request per call on its own curl handle (so thread-safe), bounded
// bodies, connect/total/stall timeouts, and streaming responses that a stop
// request ends at once (curl_multi_wakeup). Plus base64 (OpenSSL) and
// percent-encoding, which both clients need.
#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace skiff::agent {

// Standard base64 (OpenSSL EVP_EncodeBlock / EVP_DecodeBlock). Encoding pads;
// decoding wants padding and ignores whitespace.
std::string base64_encode(std::string_view in);
Result<std::string> base64_decode(std::string_view in);

// Percent-encoding for a query parameter value (continue tokens, versions).
std::string url_escape(std::string_view s);

// Trust and client identity for https://: PEM files or PEM bytes (bytes
// win); no CA given means curl's default store.
struct HttpTls {
    std::string ca_file, ca_data;
    std::string cert_file, cert_data, key_file, key_data;
    bool insecure = false;  // no server certificate check (tests only)
};

struct HttpClientRequest {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;                  // sent unless the method is GET
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    std::chrono::milliseconds timeout = std::chrono::seconds(60);  // the whole transfer; 0: none
    // Fail when no byte moves either way for this long, counted from the
    // start and from every byte (checked about once a second; 0: never).
    std::chrono::milliseconds stall_timeout{0};
    bool compressed = false;  // offer every encoding curl decodes
    bool direct = false;      // no proxy, whatever http_proxy & co. say
    HttpTls tls;
    // A stream: with on_data set, a 200 body is handed over chunk by chunk
    // as it arrives rather than collected; returning false ends it. Another
    // status collects its body as usual.
    std::function<bool(std::string_view)> on_data;
    std::stop_token stop;  // a stop request ends a stream at once
};

struct HttpClientResponse {
    long status = 0;
    std::string body;  // empty for a streamed 200
};

// Performs one request. Transport failures are errors (ECONNREFUSED,
// EHOSTUNREACH, ETIMEDOUT, EMSGSIZE for a body over 256 MiB, else EIO); any
// HTTP status is a response. A stream ended on purpose (on_data, stop, or
// the timeout once a 200 is streaming) is not an error.
Result<HttpClientResponse> http_request(const HttpClientRequest& req);

}  // namespace skiff::agent
