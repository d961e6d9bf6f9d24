// A small client for etcd's v3 JSON gateway (POST /v3/...), enough for the
// agent: range, put with lease, create-if-absent transactions, leases and a
// watch that signals changes. HTTP over libcurl (http_client.h) to loopback
// or cluster-internal endpoints; no TLS.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "http_client.h"  // base64_encode / base64_decode, as etcd's JSON carries keys and values

namespace skiff::agent {

// The end of the key range covering every key starting with prefix.
std::string prefix_range_end(const std::string& prefix);

struct Endpoint {
    std::string host;
    int port = 2379;
};
Result<Endpoint> parse_endpoint_url(const std::string& url);  // http://HOST:PORT

// Bounds on one request to one endpoint, so that a dead or hung endpoint
// costs the agent's loop a few seconds before the next one is tried.
struct EtcdTimeouts {
    std::chrono::milliseconds connect = std::chrono::seconds(2);
    std::chrono::milliseconds stall = std::chrono::seconds(2);     // nothing moving for this long
    std::chrono::milliseconds request = std::chrono::seconds(10);  // the whole request, at most
};

class EtcdClient {
public:
    explicit EtcdClient(std::vector<Endpoint> endpoints, EtcdTimeouts timeouts = {})
        : endpoints_(std::move(endpoints)), timeouts_(timeouts) {}

    // POST the body to /v3/<path> on the first endpoint that answers.
    Result<nlohmann::json> call(const std::string& path, const nlohmann::json& body);

    Result<std::vector<std::pair<std::string, std::string>>> range_prefix(const std::string& prefix);
    Status put(const std::string& key, const std::string& value, const std::string& lease_id = "");
    // Creates key only if it does not exist; true when this call created it.
    Result<bool> create(const std::string& key, const std::string& value);
    Result<std::string> grant_lease(int ttl_seconds);
    // Remaining TTL, 0 when the lease has expired.
    Result<long> keepalive(const std::string& lease_id);

    const std::vector<Endpoint>& endpoints() const { return endpoints_; }

private:
    std::vector<Endpoint> endpoints_;
    EtcdTimeouts timeouts_;
};

// Splits a byte stream of JSON objects (the watch's responses, one per line
// or back to back) into whole objects without parsing them: braces are
// counted outside strings; bytes between objects are skipped.
class JsonObjectStream {
public:
    // Calls on_object for each object completed by these bytes; false when
    // on_object returned false or an object grew past the bound.
    bool feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_object);

private:
    std::string buf_;  // from the start of the object being read
    size_t scan_ = 0;  // next byte of buf_ to look at
    int depth_ = 0;
    bool in_string_ = false, escaped_ = false;
};

// Watches a key prefix in a background thread and raises a flag on every
// event and on every (re)connect, so the owner re-reads the range.
// Endpoints are tried in turn; the destructor ends the stream at once.
class EtcdWatch {
public:
    EtcdWatch(std::vector<Endpoint> endpoints, std::string prefix, EtcdTimeouts timeouts = {});
    ~EtcdWatch();
    bool take_changed() { return changed_.exchange(false); }

private:
    void run(std::stop_token stop);
    bool on_message(std::string_view text);
    std::vector<Endpoint> endpoints_;
    std::string prefix_;
    EtcdTimeouts timeouts_;
    std::atomic<bool> changed_{true};
    std::jthread thread_;  // last: starts once the rest is ready
};

}  // namespace skiff::agent
