// Bytes as a chat template (tokenizer_config.json's chat_template): parsing either fails with a
// Status or gives a template that renders a fixed conversation, or fails to, with a Status.
#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/serving/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json context = {
      {"messages", nlohmann::json::array({{{"role", "system"}, {"content", "be brief"}},
                                          {{"role", "user"}, {"content", "hello"}},
                                          {{"role", "assistant"}, {"content", "hi"}}})},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"}};
  auto t = strata::ChatTemplate::Parse(std::string(reinterpret_cast<const char*>(data), size));
  if (t.ok()) (void)(*t)->Render(context);
  return 0;
}
