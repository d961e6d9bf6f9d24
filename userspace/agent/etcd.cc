#include "etcd.h"

#include <condition_variable>
#include <cstdlib>
#include <mutex>

namespace skiff::agent {

using nlohmann::json;

std::string prefix_range_end(const std::string& prefix) {
    std::string end = prefix;
    for (int i = static_cast<int>(end.size()) - 1; i >= 0; --i) {
        if (static_cast<uint8_t>(end[i]) < 0xff) {
            end[i] = static_cast<char>(end[i] + 1);
            end.resize(static_cast<size_t>(i) + 1);
            return end;
        }
    }
    return std::string(1, '\0');  // whole keyspace
}

Result<Endpoint> parse_endpoint_url(const std::string& url) {
    std::string rest = url;
    if (rest.rfind("http://", 0) == 0)
        rest = rest.substr(7);
    else if (rest.find("://") != std::string::npos)
        return Error::invalid("etcd endpoint " + url + ": only http:// is supported");
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    auto colon = rest.rfind(':');
    Endpoint e;
    e.host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (colon != std::string::npos) {
        e.port = std::atoi(rest.c_str() + colon + 1);
        if (e.port <= 0 || e.port > 65535) return Error::invalid("etcd endpoint " + url + ": bad port");
    }
    if (e.host.empty()) return Error::invalid("etcd endpoint " + url + ": no host");
    return e;
}

namespace {

constexpr size_t kMaxObject = 64u << 20;  // one watch response

std::string base_url(const Endpoint& ep) { return "http://" + ep.host + ":" + std::to_string(ep.port) + "/v3/"; }

HttpClientRequest post(const Endpoint& ep, const std::string& path, std::string body, const EtcdTimeouts& t) {
    HttpClientRequest q;
    q.method = "POST";
    q.url = base_url(ep) + path;
    q.headers = {"Content-Type: application/json", "Accept: application/json"};
    q.body = std::move(body);
    q.connect_timeout = t.connect;
    q.stall_timeout = t.stall;
    q.timeout = t.request;
    q.direct = true;  // cluster-internal: never through a proxy from the environment
    return q;
}

std::string string_at(const json& j, const char* key) {
    auto it = j.is_object() ? j.find(key) : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool flag_at(const json& j, const char* key) {
    auto it = j.is_object() ? j.find(key) : j.end();
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

Result<json> EtcdClient::call(const std::string& path, const json& body) {
    Error last{EHOSTUNREACH, "no etcd endpoints"};
    const std::string payload = body.dump();
    for (const auto& ep : endpoints_) {
        auto r = http_request(post(ep, path, payload, timeouts_));
        if (!r) {  // unreachable, refused, timed out: the next endpoint
            last = r.error();
            continue;
        }
        json j = json::parse(r->body, nullptr, false);
        if (r->status != 200) {
            std::string msg = string_at(j, "error");
            if (msg.empty()) msg = string_at(j, "message");
            return Error{EIO, "etcd " + path + ": HTTP " + std::to_string(r->status) + " " + msg};
        }
        if (j.is_discarded()) return Error{EPROTO, "etcd " + path + ": response is not JSON"};
        return j;
    }
    return last;
}

Result<std::vector<std::pair<std::string, std::string>>> EtcdClient::range_prefix(const std::string& prefix) {
    SKIFF_ASSIGN_OR_RETURN(json r, call("kv/range", {{"key", base64_encode(prefix)},
                                                     {"range_end", base64_encode(prefix_range_end(prefix))}}));
    std::vector<std::pair<std::string, std::string>> out;
    if (r.contains("kvs") && r["kvs"].is_array())
        for (const auto& kv : r["kvs"]) {
            auto k = base64_decode(string_at(kv, "key"));
            auto v = base64_decode(string_at(kv, "value"));
            if (k && v) out.emplace_back(*k, *v);
        }
    return out;
}

Status EtcdClient::put(const std::string& key, const std::string& value, const std::string& lease_id) {
    json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (!lease_id.empty()) body["lease"] = lease_id;
    SKIFF_ASSIGN_OR_RETURN(json r, call("kv/put", body));
    (void)r;
    return ok();
}

Result<bool> EtcdClient::create(const std::string& key, const std::string& value) {
    json body = {
        {"compare", json::array({{{"target", "CREATE"}, {"key", base64_encode(key)}, {"createRevision", "0"}}})},
        {"success", json::array({{{"requestPut", {{"key", base64_encode(key)}, {"value", base64_encode(value)}}}}})}};
    SKIFF_ASSIGN_OR_RETURN(json r, call("kv/txn", body));
    return r.value("succeeded", false);
}

Result<std::string> EtcdClient::grant_lease(int ttl_seconds) {
    SKIFF_ASSIGN_OR_RETURN(json r, call("lease/grant", {{"TTL", std::to_string(ttl_seconds)}}));
    if (!r.contains("ID") || !r["ID"].is_string()) return Error{EPROTO, "etcd lease grant: no ID"};
    return r["ID"].get<std::string>();
}

Result<long> EtcdClient::keepalive(const std::string& lease_id) {
    SKIFF_ASSIGN_OR_RETURN(json r, call("lease/keepalive", {{"ID", lease_id}}));
    const json& res = r.contains("result") ? r["result"] : r;
    if (!res.contains("TTL")) return 0L;  // expired leases come back without a TTL
    const auto& t = res["TTL"];
    return t.is_string() ? std::atol(t.get<std::string>().c_str()) : t.is_number() ? t.get<long>() : 0L;
}

bool JsonObjectStream::feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_object) {
    buf_.append(bytes);
    size_t start = 0;  // where the object being read begins in buf_
    for (; scan_ < buf_.size(); ++scan_) {
        const char c = buf_[scan_];
        if (depth_ == 0) {
            if (c == '{') start = scan_, depth_ = 1;
            continue;  // whitespace (or anything else) between objects
        }
        if (in_string_) {
            if (escaped_)
                escaped_ = false;
            else if (c == '\\')
                escaped_ = true;
            else if (c == '"')
                in_string_ = false;
        } else if (c == '"') {
            in_string_ = true;
        } else if (c == '{' || c == '[') {
            ++depth_;
        } else if ((c == '}' || c == ']') && --depth_ == 0) {
            if (!on_object(std::string_view(buf_).substr(start, scan_ + 1 - start))) return false;
            start = scan_ + 1;
        }
    }
    // Keep only the unfinished object.
    buf_.erase(0, depth_ ? start : buf_.size());
    scan_ = buf_.size();
    return buf_.size() <= kMaxObject;
}

EtcdWatch::EtcdWatch(std::vector<Endpoint> endpoints, std::string prefix, EtcdTimeouts timeouts)
    : endpoints_(std::move(endpoints)),
      prefix_(std::move(prefix)),
      timeouts_(timeouts),
      thread_([this](std::stop_token stop) { run(std::move(stop)); }) {}

EtcdWatch::~EtcdWatch() {
    thread_.request_stop();  // wakes the transfer and the pause between attempts
    thread_.join();
}

// One response of the stream: {"result":{"created":true,...}} once the
// watch is in place, then {"result":{"events":[...]}}; an error object or a
// cancelled watch (compaction) ends the stream so that it starts over.
bool EtcdWatch::on_message(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (!j.is_object()) {
        changed_ = true;  // unreadable: assume anything changed
        return true;
    }
    if (j.contains("error")) return false;
    const json& r = j.contains("result") ? j["result"] : j;
    if (flag_at(r, "canceled")) return false;
    // Created: anything may have happened while we were not watching.
    if (flag_at(r, "created")) changed_ = true;
    if (r.is_object() && r.contains("events") && r["events"].is_array() && !r["events"].empty()) changed_ = true;
    return true;
}

void EtcdWatch::run(std::stop_token stop) {
    const std::string body =
        json{{"create_request",
              {{"key", base64_encode(prefix_)}, {"range_end", base64_encode(prefix_range_end(prefix_))}}}}
            .dump();
    std::mutex mu;
    std::condition_variable_any cv;
    if (endpoints_.empty()) return;
    for (size_t next = 0; !stop.stop_requested();) {
        const Endpoint& ep = endpoints_[next++ % endpoints_.size()];
        HttpClientRequest q = post(ep, "watch", body, timeouts_);
        q.timeout = std::chrono::milliseconds(0);  // a watch stays open, and is mostly quiet
        q.stall_timeout = std::chrono::milliseconds(0);
        q.stop = stop;
        JsonObjectStream objects;
        auto each = [this](std::string_view obj) { return on_message(obj); };
        q.on_data = [&](std::string_view chunk) { return objects.feed(chunk, each); };
        (void)http_request(q);  // returns when the stream ends, fails or is stopped
        changed_ = true;        // anything may happen while disconnected
        std::unique_lock lk(mu);
        cv.wait_for(lk, stop, std::chrono::milliseconds(500), [] { return false; });
    }
}

}  // namespace skiff::agent
