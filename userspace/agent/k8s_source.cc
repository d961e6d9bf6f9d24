#include "k8s_source.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace skiff::agent {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

enum class Kind { Node, Service, EndpointSlice };

const json& member(const json& j, const char* key) {
    static const json null;
    auto it = j.is_object() ? j.find(key) : j.end();
    return it != j.end() ? *it : null;
}

std::string str_of(const json& j, const char* key) {
    const json& v = member(j, key);
    return v.is_string() ? v.get<std::string>() : "";
}

// "HTTP 403: nodes is forbidden: ..." from a Status body when there is one.
Error http_error(const std::string& what, const KubeResponse& r) {
    json st = json::parse(r.body, nullptr, false);
    std::string msg = str_of(st, "message");
    if (msg.empty()) msg = r.body.substr(0, 200);
    int code = r.status == 401 || r.status == 403 ? EACCES : r.status == 404 ? ENOENT : EIO;
    return Error{code, what + ": HTTP " + std::to_string(r.status) + (msg.empty() ? "" : ": " + msg)};
}

// Skipped as kube-proxy skips them: another proxy's, or headless.
bool not_ours(const json& obj) {
    const json& labels = member(member(obj, "metadata"), "labels");
    return labels.is_object() && (labels.contains("service.kubernetes.io/headless") ||
                                  labels.contains("service.kubernetes.io/service-proxy-name"));
}

struct Entry {
    ObjectRef obj;
    std::optional<NodeSpec> node;  // Kind::Node
};

struct Resource {
    Kind kind;
    const char* name;
    std::vector<std::string> paths;  // preferred first; a 404 moves to the next
};

class Reflector {
public:
    Reflector(Resource res, KubeClient& client, const KubeSourceOptions& opts, std::atomic<uint64_t>& changes)
        : res_(std::move(res)), client_(client), opts_(opts), changes_(changes), rng_(std::random_device{}()) {
        st_.resource = res_.name;
        thread_ = std::jthread([this](std::stop_token st) { run(st); });
    }

    KubeResourceStatus status() const {
        std::lock_guard lk(mu_);
        KubeResourceStatus s = st_;
        s.path = res_.paths[path_idx_];
        s.objects = cache_.size();
        return s;
    }

    // Adds this resource's objects to spec.
    void fill(ClusterSpec& spec) const {
        std::lock_guard lk(mu_);
        for (const auto& [key, e] : cache_) {
            if (res_.kind == Kind::Node)
                spec.nodes.push_back(*e.node);
            else
                (res_.kind == Kind::Service ? spec.services : spec.endpoint_slices).add(key, e.obj);
        }
    }

private:
    enum class End { Normal, Gone, Failed };

    void run(std::stop_token st) {
        auto backoff = opts_.backoff_initial;
        bool need_list = true;
        while (!st.stop_requested()) {
            if (need_list) {
                Status s = list(st);
                if (st.stop_requested()) break;
                if (!s) {
                    fail(s.error().message);
                    sleep(st, backoff);
                    continue;
                }
                need_list = false;
                backoff = opts_.backoff_initial;
            }
            auto started = Clock::now();
            size_t events = 0;
            std::string why;
            End end = watch(st, events, why);
            if (st.stop_requested()) break;
            {
                std::lock_guard lk(mu_);
                ++st_.watches;
            }
            if (end == End::Gone) {
                log::info(std::string("kubernetes ") + res_.name + ": " + why + ": listing again");
                need_list = true;
                // A server answering 410 to a fresh version must not make us spin.
                if (events == 0 && Clock::now() - started < std::chrono::seconds(1)) sleep(st, backoff);
            } else if (end == End::Failed) {
                fail(why);
                sleep(st, backoff);
            } else if (events == 0 && Clock::now() - started < std::chrono::seconds(1)) {
                sleep(st, backoff);  // closed at once: do not hammer a proxy that does that
            } else {
                backoff = opts_.backoff_initial;
            }
        }
    }

    void fail(const std::string& why) {
        log::warn(std::string("kubernetes ") + res_.name + ": " + why);
        std::lock_guard lk(mu_);
        st_.failing = true;
        st_.last_error = why;
    }

    // Sleeps a jittered `backoff` (half to all of it), doubles it up to the cap.
    void sleep(std::stop_token st, std::chrono::milliseconds& backoff) {
        std::uniform_int_distribution<long long> d(backoff.count() / 2, backoff.count());
        std::chrono::milliseconds t(d(rng_));
        backoff = std::min(backoff * 2, opts_.backoff_max);
        std::unique_lock lk(sleep_mu_);
        sleep_cv_.wait_for(lk, st, t, [] { return false; });
    }

    // The cached form of an object: kind and apiVersion set (list items
    // lack them), managedFields dropped, v1beta1 slices converted, nodes cut
    // down to what NodeSpec holds (so heartbeats are no change at all).
    std::optional<Entry> prepare(json obj) const {
        if (!obj.is_object() || !member(obj, "metadata").is_object()) return std::nullopt;
        obj["metadata"].erase("managedFields");
        Entry e;
        if (res_.kind == Kind::Node) {
            json m = obj["metadata"], spec = member(obj, "spec"), status = member(obj, "status");
            json node = {{"kind", "Node"}, {"apiVersion", "v1"}, {"metadata", json::object()}};
            for (const char* k : {"name", "uid", "creationTimestamp"})
                if (m.contains(k)) node["metadata"][k] = m[k];
            for (const char* k : {"podCIDR", "podCIDRs"})
                if (spec.is_object() && spec.contains(k)) node["spec"][k] = spec[k];
            if (status.is_object() && status.contains("addresses")) node["status"]["addresses"] = status["addresses"];
            auto parsed = parse_kube_list(json{{"kind", "NodeList"}, {"items", json::array({node})}}.dump());
            if (!parsed || parsed->nodes.size() != 1) return std::nullopt;
            e.node = parsed->nodes[0];
            obj = std::move(node);
        } else if (res_.kind == Kind::Service) {
            if (!obj.contains("kind")) obj["kind"] = "Service";
            if (!obj.contains("apiVersion")) obj["apiVersion"] = "v1";
        } else {
            if (!obj.contains("kind")) obj["kind"] = "EndpointSlice";
            if (res_.paths[path_idx_].find("/v1beta1/") != std::string::npos ||
                str_of(obj, "apiVersion") == "discovery.k8s.io/v1beta1")
                endpoint_slice_v1beta1_to_v1(obj);
            if (!obj.contains("apiVersion")) obj["apiVersion"] = "discovery.k8s.io/v1";
        }
        e.obj = std::make_shared<const json>(std::move(obj));
        return e;
    }

    bool wanted(const json& obj) const { return res_.kind == Kind::Node || !not_ours(obj); }

    std::string selector() const {
        if (res_.kind == Kind::Node) return "";
        return "&labelSelector=" +
               url_escape("!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless");
    }

    struct Listed {
        std::map<std::string, Entry> objects;
        std::string rv;
    };

    // All pages of one LIST (one snapshot); nullopt: start over (the
    // continue token expired, or the preferred version is not served).
    Result<std::optional<Listed>> list_pages(std::stop_token st) {
        Listed out;
        std::string cont;
        do {
            if (st.stop_requested()) return Error{ECANCELED, "stopped"};
            const std::string& base = res_.paths[path_idx_];
            std::string path = base + "?limit=" + std::to_string(opts_.page_limit) + selector();
            if (!cont.empty()) path += "&continue=" + url_escape(cont);
            auto r = client_.get(path);
            if (!r) return r.error().wrap(std::string("list ") + res_.name);
            if (r->status == 404 && cont.empty() && path_idx_ + 1 < res_.paths.size()) {
                log::info("kubernetes: " + base + " is not served, trying " + res_.paths[path_idx_ + 1]);
                set_path(path_idx_ + 1);
                return std::optional<Listed>{};
            }
            if (r->status == 410 && !cont.empty()) {
                log::info(std::string("kubernetes ") + res_.name + ": continue token expired, listing again");
                return std::optional<Listed>{};
            }
            if (r->status != 200) {
                if (path_idx_ != 0) set_path(0);  // maybe served again after an upgrade
                return http_error("list " + base, *r);
            }
            json page = json::parse(r->body, nullptr, false);
            const json& items = member(page, "items");
            if (!items.is_array()) return Error::invalid("list " + base + ": not a list");
            out.rv = str_of(member(page, "metadata"), "resourceVersion");
            cont = str_of(member(page, "metadata"), "continue");
            for (const auto& item : items) {
                if (!wanted(item)) continue;
                auto e = prepare(item);
                if (!e) continue;
                std::string key = ObjectSet::key_of(*e->obj);
                out.objects[key] = std::move(*e);
            }
        } while (!cont.empty());
        if (out.rv.empty()) return Error::invalid(std::string("list ") + res_.name + ": no resourceVersion");
        return std::optional<Listed>{std::move(out)};
    }

    // A LIST whose result replaces the cache whole: objects gone from it
    // are deletions (those made while no watch was running included).
    Status list(std::stop_token st) {
        std::optional<Listed> got;
        for (int attempt = 0; !got; ++attempt) {
            if (attempt == 8) return Error{EAGAIN, std::string("list ") + res_.name + ": keeps restarting"};
            SKIFF_ASSIGN_OR_RETURN(got, list_pages(st));
        }
        std::lock_guard lk(mu_);
        bool changed = got->objects.size() != cache_.size() || !st_.listed;
        for (auto& [key, e] : got->objects) {
            auto it = cache_.find(key);
            if (it != cache_.end() && *it->second.obj == *e.obj)
                e.obj = it->second.obj;  // keep its identity
            else
                changed = true;
        }
        cache_ = std::move(got->objects);
        st_.resource_version = got->rv;
        st_.listed = true;
        st_.failing = false;
        ++st_.lists;
        if (changed) ++changes_;
        return ok();
    }

    void set_path(size_t i) {
        std::lock_guard lk(mu_);
        path_idx_ = i;
    }

    // One watch stream from the last resourceVersion seen.
    End watch(std::stop_token st, size_t& events, std::string& why) {
        std::string rv;
        {
            std::lock_guard lk(mu_);
            rv = st_.resource_version;
        }
        std::uniform_int_distribution<long long> d(opts_.watch_timeout_min.count(),
                                                   std::max(opts_.watch_timeout_min, opts_.watch_timeout_max).count());
        long long timeout = d(rng_);
        const std::string& base = res_.paths[path_idx_];
        std::string path = base + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + url_escape(rv) +
                           "&timeoutSeconds=" + std::to_string(timeout) + selector();
        std::optional<End> end;
        auto on_line = [&](std::string_view line) {
            json ev = json::parse(line, nullptr, false);
            std::string type = str_of(ev, "type");
            const json& obj = member(ev, "object");
            if (type == "ERROR") {
                const json& code = member(obj, "code");
                why = "watch: " + str_of(obj, "message") + " (" + (code.is_number() ? code.dump() : "no code") + ")";
                end = code.is_number_integer() && code.get<int>() == 410 ? End::Gone : End::Failed;
                return false;
            }
            if (!obj.is_object() || type.empty()) {
                why = "watch " + base + ": undecodable event";
                end = End::Failed;
                return false;
            }
            ++events;
            std::string new_rv = str_of(member(obj, "metadata"), "resourceVersion");
            std::string key = ObjectSet::key_of(obj);
            std::optional<Entry> e;
            if (type != "BOOKMARK" && type != "DELETED" && wanted(obj)) e = prepare(obj);
            std::lock_guard lk(mu_);
            if (!new_rv.empty()) st_.resource_version = new_rv;
            if (type == "BOOKMARK") return true;
            auto it = cache_.find(key);
            if (e) {
                if (it != cache_.end() && *it->second.obj == *e->obj) return true;  // nothing we keep changed
                cache_[key] = std::move(*e);
                ++changes_;
            } else if (it != cache_.end()) {  // deleted, or no longer ours
                cache_.erase(it);
                ++changes_;
            }
            return true;
        };
        auto r = client_.stream(path, on_line, st, std::chrono::seconds(timeout) + opts_.watch_slack);
        if (!r) {
            why = r.error().message;
            return End::Failed;
        }
        if (end) return *end;
        if (r->status == 410) {
            why = "watch: HTTP 410 (resource version too old)";
            return End::Gone;
        }
        if (r->status != 200 && r->status != 0) {
            why = http_error("watch " + base, *r).message;
            return End::Failed;
        }
        std::lock_guard lk(mu_);
        st_.failing = false;
        return End::Normal;
    }

    Resource res_;
    KubeClient& client_;
    const KubeSourceOptions& opts_;
    std::atomic<uint64_t>& changes_;
    std::mt19937_64 rng_;  // the reflector's thread only
    mutable std::mutex mu_;
    std::map<std::string, Entry> cache_;  // "<namespace>/<name>"
    KubeResourceStatus st_;
    size_t path_idx_ = 0;  // written by the thread under mu_
    std::mutex sleep_mu_;
    std::condition_variable_any sleep_cv_;
    std::jthread thread_;  // last: stopped and joined before the rest goes
};

class KubeSourceImpl final : public KubeSource {
public:
    explicit KubeSourceImpl(KubeSourceOptions o) : opts_(std::move(o)), client_(opts_.kube) {
        std::vector<Resource> rs = {
            {Kind::Node, "nodes", {"/api/v1/nodes"}},
            {Kind::Service, "services", {"/api/v1/services"}},
            {Kind::EndpointSlice,
             "endpointslices",
             {"/apis/discovery.k8s.io/v1/endpointslices", "/apis/discovery.k8s.io/v1beta1/endpointslices"}},
        };
        for (auto& r : rs) reflectors_.push_back(std::make_unique<Reflector>(std::move(r), client_, opts_, changes_));
    }

    Result<std::optional<ClusterSpec>> poll() override {
        // The first snapshot waits for every resource: one without services
        // would tell the agent to remove them all.
        std::string waiting;
        bool pending = false;
        for (const auto& s : status()) {
            if (s.listed) continue;
            pending = true;
            if (!s.last_error.empty()) waiting += (waiting.empty() ? "" : "; ") + s.resource + ": " + s.last_error;
        }
        if (pending && waiting.empty()) return std::optional<ClusterSpec>{};  // still listing
        if (pending) return Error{EAGAIN, "kubernetes " + opts_.kube.server + ": not listed yet: " + waiting};
        uint64_t v = changes_.load();
        if (emitted_ && v == polled_) return std::optional<ClusterSpec>{};
        polled_ = v;
        ClusterSpec spec;
        for (const auto& r : reflectors_) r->fill(spec);
        spec.number_after(prev_);
        prev_ = spec;
        emitted_ = true;
        return std::optional<ClusterSpec>{std::move(spec)};
    }

    std::string describe() const override {
        std::string s = "kubernetes " + opts_.kube.server + " (";
        bool first = true;
        for (const auto& st : status()) {
            s += (first ? "" : ", ") + st.path + ": ";
            first = false;
            if (st.listed)
                s += std::to_string(st.objects) + " objects at " + st.resource_version;
            else
                s += "not listed";
            if (st.failing) s += ", failing: " + st.last_error;
        }
        return s + ")";
    }

    std::vector<KubeResourceStatus> status() const override {
        std::vector<KubeResourceStatus> out;
        for (const auto& r : reflectors_) out.push_back(r->status());
        return out;
    }

    Status set_network_available(const std::string& node, const std::string& message) override {
        return patch_network_available(client_, node, message);
    }

private:
    KubeSourceOptions opts_;
    KubeClient client_;
    std::atomic<uint64_t> changes_{0};
    std::vector<std::unique_ptr<Reflector>> reflectors_;  // after what they use: destroyed first
    ClusterSpec prev_;
    uint64_t polled_ = 0;
    bool emitted_ = false;
};

}  // namespace

void endpoint_slice_v1beta1_to_v1(json& slice) {
    if (!slice.is_object()) return;
    slice["apiVersion"] = "discovery.k8s.io/v1";
    auto eps = slice.find("endpoints");
    if (eps == slice.end() || !eps->is_array()) return;
    for (auto& e : *eps) {
        if (!e.is_object() || !e.contains("topology")) continue;
        json topo = std::move(e["topology"]);
        e.erase("topology");
        if (!topo.is_object()) continue;
        for (auto [label, field] :
             {std::pair{"kubernetes.io/hostname", "nodeName"}, std::pair{"topology.kubernetes.io/zone", "zone"}}) {
            if (!topo.contains(label)) continue;
            if (!e.contains(field)) e[field] = topo[label];
            topo.erase(label);
        }
        if (!topo.empty()) e["deprecatedTopology"] = std::move(topo);
    }
}

std::string network_available_patch(const std::string& message, std::time_t now) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char ts[32];
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json cond = {{"type", "NetworkUnavailable"}, {"status", "False"},        {"reason", "SkiffIsUp"},
                 {"message", message},           {"lastTransitionTime", ts}, {"lastHeartbeatTime", ts}};
    return json{{"status", {{"conditions", json::array({cond})}}}}.dump();
}

Status patch_network_available(KubeClient& client, const std::string& node, const std::string& message) {
    const std::string path = "/api/v1/nodes/" + url_escape(node) + "/status";
    auto r = client.patch(path, network_available_patch(message, std::time(nullptr)),
                          "application/strategic-merge-patch+json");
    if (!r) return r.error().wrap("patch " + path);
    if (r->status < 200 || r->status > 299) return http_error("patch " + path, *r);
    return ok();
}

Result<std::unique_ptr<KubeSource>> make_kubernetes_source(KubeSourceOptions opts) {
    if (opts.kube.server.rfind("https://", 0) != 0 && opts.kube.server.rfind("http://", 0) != 0)
        return Error::invalid("kubernetes server '" + opts.kube.server + "' is not an http(s) URL");
    if (opts.page_limit < 1) return Error::invalid("kubernetes page limit must be positive");
    if (opts.backoff_initial.count() < 1 || opts.backoff_max < opts.backoff_initial)
        return Error::invalid("kubernetes backoff: initial must be positive and at most max");
    return std::unique_ptr<KubeSource>(new KubeSourceImpl(std::move(opts)));
}

}  // namespace skiff::agent
