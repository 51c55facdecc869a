// Chat templates against real Jinja (python3-jinja2, set up as Hugging Face transformers does:
// trim_blocks, lstrip_blocks, raise_exception): the templates of several model families render
// byte-identical prompts for several conversations, and errors are errors in both.
#include <gtest/gtest.h>

#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/serving/chat_template.h"
#include "tests/shell.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;

const std::vector<std::string>& Templates() {
  static const std::vector<std::string> t = {
      // ChatML (Qwen, many fine-tunes)
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
      "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      // Llama 3
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
      "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
      "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
      // Zephyr (relies on trim_blocks / lstrip_blocks)
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
      "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% "
      "elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif "
      "%}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
      // Mistral style: optional system message, slices, alternation check with raise_exception
      "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set "
      "loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- "
      "bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 "
      "== 0) %}\n        {{- raise_exception('roles must alternate user/assistant') }}\n    {%- endif %}\n    {%- if "
      "message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' "
      "[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- "
      "' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == "
      "'assistant' %}\n        {{- ' ' + message['content']|trim + eos_token}}\n    {%- else %}\n        {{- "
      "raise_exception('Only user and assistant roles are supported') }}\n    {%- endif %}\n{%- endfor %}\n",
      // Gemma style: role renaming with a conditional expression, method calls
      "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else "
      "message['role'] %}{{ '<start_of_turn>' + role + '\\n' + message['content'].strip() + '<end_of_turn>\\n' }}{% "
      "endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
      // Llama 2 chat
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
      "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
      "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
      "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
      "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
      "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
      "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
      "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
      // Llama 3.1, tools absent: `is defined` against None, namespace-free defaults, tojson
      "{{- bos_token }}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n{%- if not "
      "date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n{%- if messages[0]['role'] "
      "== 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] "
      "%}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>"
      "\\n\\n\" }}\n{%- if tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n{{- \"Cutting Knowledge "
      "Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{{- system_message }}\n{{- "
      "\"<|eot_id|>\" }}\n{%- for message in messages %}\n    {%- if not (message.role == 'ipython' or message.role == "
      "'tool' or 'tool_calls' in message) %}\n        {{- '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n    {%- endif %}\n{%- endfor %}\n{%- if "
      "add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n",
      // Qwen 2.5 style: namespace() with attribute assignment, undefined attributes, loop.previtem / nextitem
      "{%- set ns = namespace(system=false, turns=0) %}{%- for message in messages %}{%- if message.role == 'system' "
      "%}{%- set ns.system = true %}{%- endif %}{%- set ns.turns = ns.turns + 1 %}{%- if (message.role == 'user') or "
      "(message.role == 'assistant' and not message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + "
      "message.content + '<|im_end|>\\n' }}{%- endif %}{{- '[after ' + loop.previtem.role + ']' if loop.previtem is "
      "defined }}{{- '[before ' + loop.nextitem.role + ']' if loop.nextitem is defined else '[end]' }}{%- endfor "
      "%}{%- if not ns.system %}{{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{%- endif %}{{- ns.turns "
      "}}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
      // Filters: selectattr / rejectattr / map / list / join / first, tojson (sorted, HTML-safe, indent)
      "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' | ') }}\n{{ messages | "
      "rejectattr('role', 'equalto', 'user') | list | length }}\n{{ (messages | first) | tojson }}\n{{ messages | "
      "tojson(indent=2) }}\n{{ messages | map(attribute='role') | map('upper') | join(',') }}\n{% set x = none %}{{ x "
      "}} {{ 'defined' if x is defined else 'undefined' }} {{ 'u' if y is undefined }} {{ y | default('dflt') }} {{ x "
      "| default('kept') }}",
      // Python's integer and float arithmetic: floor division and modulo of negative numbers, floats
      "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 // -2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 * 3.5 }} "
      "{{ 7 / 2 }} {{ -(3 - 5) }} {{ messages | length * 10 - 1 }} {{ range(messages | length) | list | length }}",
  };
  return t;
}

const std::vector<json>& Conversations() {
  static const std::vector<json> c = {
      json::array({{{"role", "user"}, {"content", "Hello!"}}}),
      json::array({{{"role", "system"}, {"content", "Be brief."}},
                   {{"role", "user"}, {"content", "  What is 2+2?  "}},
                   {{"role", "assistant"}, {"content", "4 "}},
                   {{"role", "user"}, {"content", "And 3+3?\nThanks"}}}),
      json::array({{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}}),  // breaks alternation
      json::array({{{"role", "user"}, {"content", "héllo 😀 \"quotes\" {braces}"}}}),
  };
  return c;
}

TEST(ChatTemplate, RendersLikeJinja2) {
  const std::string dir = ::testing::TempDir();
  json cases = json::array();
  for (const auto& t : Templates())
    for (const auto& m : Conversations()) cases.push_back({{"template", t}, {"messages", m}});
  std::ofstream(dir + "/templates.json") << cases.dump();
  std::ofstream(dir + "/render.py")
      << "import json, sys\n"
         "from jinja2.sandbox import ImmutableSandboxedEnvironment\n"
         "def raise_exception(m):\n    raise Exception(m)\n"
         "env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)\n"
         "env.globals['raise_exception'] = raise_exception\n"
         "out = []\n"
         "for c in json.load(open(sys.argv[1])):\n"
         "    try:\n"
         "        out.append(env.from_string(c['template']).render(messages=c['messages'], add_generation_prompt=True,"
         " bos_token='<s>', eos_token='</s>'))\n"
         "    except Exception as e:\n"
         "        out.append(None)\n"
         "print(json.dumps(out))\n";
  const ShellResult rendered = RunShell("python3 " + dir + "/render.py " + dir + "/templates.json");
  ASSERT_EQ(rendered.code, 0) << "python3 with jinja2 is needed (Debian: python3-jinja2)";
  const json expected = json::parse(rendered.out);
  ASSERT_EQ(expected.size(), cases.size());
  std::printf("%zu template x conversation cases rendered by jinja2\n", cases.size());
  int errors = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto t = ChatTemplate::Parse(cases[i]["template"]);
    ASSERT_TRUE(t.ok()) << t.status() << "\n" << cases[i]["template"];
    auto got = (*t)->Render({{"messages", cases[i]["messages"]}, {"add_generation_prompt", true},
                             {"bos_token", "<s>"}, {"eos_token", "</s>"}});
    if (expected[i].is_null()) {
      EXPECT_FALSE(got.ok()) << "case " << i << " should fail as in Jinja";
      ++errors;
    } else {
      ASSERT_TRUE(got.ok()) << got.status() << " case " << i;
      EXPECT_EQ(*got, expected[i].get<std::string>()) << "case " << i << "\n" << cases[i]["template"];
    }
  }
  EXPECT_EQ(errors, 2);  // the Mistral and Llama 2 templates refuse the non-alternating conversation
}

TEST(ChatTemplate, UnsupportedSyntaxIsAnErrorNotAGuess) {
  EXPECT_FALSE(ChatTemplate::Parse("{% macro m() %}x{% endmacro %}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{% for m in messages %}").ok());
  auto unknown_filter = ChatTemplate::Parse("{{ messages | frobnicate }}");
  if (unknown_filter.ok()) {
    EXPECT_FALSE((*unknown_filter)->Render({{"messages", 1}}).ok());
  }
  EXPECT_FALSE(ChatTemplate::Parse("{{ 'unterminated }}").ok());
}

// Inputs the fuzzer (tests/fuzz/fuzz_chat_template.cc) found, kept as regressions.
TEST(ChatTemplate, FuzzerFindingsParseOrFailCleanly) {
  // A tag that is only a whitespace-control dash: it used to pop an empty string (UBSan).
  auto dash = ChatTemplate::Parse("{%-%}");
  EXPECT_FALSE(dash.ok());
  auto both = ChatTemplate::Parse("a {{- -}} b");
  EXPECT_FALSE(both.ok());
  // Numbers no int64 holds: a huge float floor-divided once cast to an integer (UBSan); the same
  // overflows in integer arithmetic, slices and range() now fail with a message or stay floats.
  const json context = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  const std::vector<std::pair<std::string, bool>> cases = {
      {"{{ 888405000000000000000000.0 // 2 }}", true},  // a float stays a float, as in Python
      {"{{ 888405000000000000000000.0 % 7 }}", true},
      {"{{ 9223372036854775807 + 1 }}", false},
      {"{{ -9223372036854775807 - 2 }}", false},
      {"{{ 4294967296 * 4294967296 }}", false},
      {"{{ -(-9223372036854775807 - 1) }}", false},
      {"{{ (-9223372036854775807 - 1) // -1 }}", false},
      {"{{ messages[1000000000000000000000.0:] }}", false},
      {"{{ messages[:2.5] }}", false},
      {"{{ range(1000000000000000000000.0) }}", false},
      {"{{ range(100000000000) }}", false},
      {"{{ messages | tojson(indent=2147483647) }}", false},
      {"{{ 1 // 0 }}", false},
      {"{{ 1.5 % 0 }}", false},
  };
  for (const auto& [text, renders] : cases) {
    auto t = ChatTemplate::Parse(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status();
    EXPECT_EQ((*t)->Render(context).ok(), renders) << text;
  }
}

}  // namespace
}  // namespace strata::testing
