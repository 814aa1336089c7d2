// SPDX-License-Identifier: Apache-2.0
// JSON of the analysis (docs/analysis.md): the fields a window record
// carries, wattpipe's own MQTT analysis message, and step events. Not part of
// EVerest's API: these go under wattpipe's own topics and in the logs.
// publish/spec/wattpipe_analysis.schema.json describes the messages.
//
// Threading: pure functions over caller-owned writers.
#pragma once

#include <span>
#include <string_view>

#include "wattpipe/legal/json_writer.hpp"
#include "wattpipe/pipeline/efficiency.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::publish {

// The analysis fields of a window, inside an object the caller opened;
// nothing when the window has no analysis.
void write_analysis_fields(const pipeline::WindowRecord& r, legal::JsonWriter& w);
// The efficiency fields of a window measured against another point (P_in_W,
// loss_W, efficiency; docs/wprb.md), inside an object the caller opened.
void write_two_point_fields(const pipeline::WindowRecord& r, legal::JsonWriter& w);
// The efficiency map's bins as an array: [{p_lo_W, p_hi_W, efficiency,
// E_in_Wh, E_out_Wh, windows}, ...] (--stats-json and the live page).
void write_efficiency_bins(std::span<const pipeline::EfficiencyMap::Bin> bins, legal::JsonWriter& w);

// {prefix}wattpipe/{module}/analysis: the window's time, seq and analysis.
std::string_view write_analysis_message(const pipeline::WindowRecord& r, std::string_view meter_id,
                                        legal::JsonWriter& w);

// A step event: {"event":"step", ...}, the same object in the log and on MQTT.
std::string_view write_step_event(const pipeline::StepEvent& e, std::string_view meter_id, legal::JsonWriter& w);

}  // namespace wattpipe::publish
