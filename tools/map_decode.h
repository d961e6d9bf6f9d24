// skiff's map entries decoded to JSON in the datapath's terms: one decoder
// per key and value layout in maps/skiff_maps.h, used by the list commands,
// and the table of them that `map dump` applies to raw entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datapath/map_layout.h"

namespace skiff::ctl {

// Raw bytes as "0a 00 01 02".
std::string hex(const std::vector<uint8_t>& bytes);

nlohmann::json cidr(const skiff_node_key& k);
nlohmann::json node_value(const skiff_node_info& v);
nlohmann::json svc_key(const skiff_service_key& k);
nlohmann::json svc_value(const skiff_service_key& k, const skiff_service_value& v);
nlohmann::json backend_value(const skiff_l4_addr& b);
nlohmann::json ct_key(const skiff_ct_key& k);
nlohmann::json ct_value(const skiff_ct_value& v, uint64_t now);
nlohmann::json nat_key(const skiff_ct_key& k);
nlohmann::json nat_value(const skiff_nat_value& v, uint64_t now);

// A map whose entries have a known layout.
struct Decoder {
    const char* map;
    size_t key_size, value_size;
    std::function<nlohmann::json(const uint8_t* key, const uint8_t* value, uint64_t now)> run;  // {"key", "value"}
};

// One per map skiff pins whose layout skiffctl knows.
const std::vector<Decoder>& decoders();

}  // namespace skiff::ctl
