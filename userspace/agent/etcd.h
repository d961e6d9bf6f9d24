// A small client for etcd's v3 JSON gateway (POST /v3/...), enough for the
// agent: range, put with lease, create-if-absent transactions, leases and a
// watch that signals changes. HTTP/1.0 to loopback or cluster-internal
// endpoints; no TLS.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"

namespace skiff::agent {

std::string base64_encode(const std::string& in);
Result<std::string> base64_decode(const std::string& in);
// The end of the key range covering every key starting with prefix.
std::string prefix_range_end(const std::string& prefix);

struct Endpoint {
    std::string host;
    int port = 2379;
};
Result<Endpoint> parse_endpoint_url(const std::string& url);  // http://HOST:PORT

class EtcdClient {
public:
    explicit EtcdClient(std::vector<Endpoint> endpoints) : endpoints_(std::move(endpoints)) {}

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
};

// Watches a key prefix in a background thread and raises a flag on every
// event and on every (re)connect, so the owner re-reads the range.
class EtcdWatch {
public:
    EtcdWatch(std::vector<Endpoint> endpoints, std::string prefix);
    ~EtcdWatch();
    bool take_changed() { return changed_.exchange(false); }

private:
    void run();
    std::vector<Endpoint> endpoints_;
    std::string prefix_;
    std::atomic<bool> changed_{true};
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    int fd_ = -1;  // the stream being read, for shutdown() on stop
    std::thread thread_;
};

}  // namespace skiff::agent
