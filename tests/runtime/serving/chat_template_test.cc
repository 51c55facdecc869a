// Chat templates against Hugging Face transformers' own apply_chat_template (the pinned
// transformers of the test virtual environment, scripts/python_env.sh; no PyTorch needed): the
// published templates of Llama 2, TinyLlama (Zephyr),
// Llama 3.1, Mistral, Qwen 2.5 and Gemma 2, copied verbatim from their tokenizer_config.json,
// render byte-identical prompts for conversations with and without tools, tool calls and tool
// results; where transformers raises, Strata fails too.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "nlohmann/json.hpp"
#include "runtime/serving/chat_template.h"
#include "tests/shell.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  // key order as written, as Python dicts keep it

struct NamedTemplate {
  std::string name, source;
};

// Verbatim `chat_template` strings (the JSON string decoded), as published on the Hugging Face Hub.
const std::vector<NamedTemplate>& PublishedTemplates() {
  static const std::vector<NamedTemplate> t = {
      // meta-llama/Llama-2-7b-chat-hf (the same in every Llama 2 chat size)
      {"Llama-2-chat",
       R"TPL({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})TPL"},
      // TinyLlama/TinyLlama-1.1B-Chat-v1.0 (Zephyr's, from the alignment-handbook)
      {"TinyLlama-Chat",
       R"TPL({% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>
'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %})TPL"},
      // meta-llama/Llama-3.1-8B-Instruct, whole, with its tool branches
      {"Llama-3.1-Instruct",
       R"TPL({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)TPL"},
      // mistralai/Mistral-7B-Instruct-v0.1 as first released
      {"Mistral-v0.1-as-released",
       R"TPL({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})TPL"},
      // mistralai/Mixtral-8x7B-Instruct-v0.1 (optional system message)
      {"Mixtral-v0.1",
       R"TPL({%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
)TPL"},
      // mistralai/Mistral-7B-Instruct-v0.3, whole, with [AVAILABLE_TOOLS] and [TOOL_CALLS]
      {"Mistral-v0.3",
       R"TPL({%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
)TPL"},
      // Qwen/Qwen2.5-7B-Instruct (the same in every Qwen 2.5 Instruct size), with tools
      {"Qwen2.5-Instruct",
       R"TPL({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)TPL"},
      // google/gemma-2-9b-it (the same as gemma-7b-it and gemma-2b-it)
      {"Gemma-2-it",
       R"TPL({{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})TPL"},
  };
  return t;
}

// Small templates for what the published ones do not reach.
const std::vector<NamedTemplate>& SyntheticTemplates() {
  static const std::vector<NamedTemplate> t = {
      {"ChatML",
       "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
       "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
      {"Llama-3-Instruct",
       "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
       "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
       "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
       "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"},
      // namespace() with attribute assignment, undefined attributes, loop.previtem / nextitem
      {"namespace-and-loop",
       "{%- set ns = namespace(system=false, turns=0) %}{%- for message in messages %}{%- if message.role == 'system' "
       "%}{%- set ns.system = true %}{%- endif %}{%- set ns.turns = ns.turns + 1 %}{%- if (message.role == 'user') or "
       "(message.role == 'assistant' and not message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + "
       "message.content + '<|im_end|>\\n' }}{%- endif %}{{- '[after ' + loop.previtem.role + ']' if loop.previtem is "
       "defined }}{{- '[before ' + loop.nextitem.role + ']' if loop.nextitem is defined else '[end]' }}{%- endfor "
       "%}{%- if not ns.system %}{{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{%- endif %}{{- ns.turns "
       "}}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"},
      // Filters and tests: selectattr / rejectattr / select / reject / map / list / join / first,
      // defined and none, default
      {"filters",
       "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' | ') }}\n{{ messages | "
       "rejectattr('role', 'equalto', 'user') | list | length }}\n{{ messages | map(attribute='role') | map('upper') | "
       "join(',') }}\n{{ messages | map(attribute='role') | reject('equalto', 'user') | join(',') }}\n{{ messages | "
       "map(attribute='role') | select('ne', 'system') | list | length }}\n{{ [1, 2, 3, 4] | select('gt', 2) | "
       "join(',') }} {{ [1, 2, 3] | reject('in', [2]) | join(',') }} {{ ['a', 1, none] | select('string') | join }} "
       "{{ [0, 1, '', 'x'] | select | list | length }}\n{% set x = none %}{{ x }} {{ 'defined' if x is defined else "
       "'undefined' }} {{ 'u' if y is undefined }} {{ y | default('dflt') }} {{ x | default('kept') }} {{ '' | "
       "default('empty', true) }}"},
      // Hugging Face's tojson: key order kept, no HTML escaping, UTF-8 kept; its keyword options
      {"tojson",
       "{{ messages | tojson }}\n{{ messages[0] | tojson(sort_keys=true) }}\n{{ messages[-1] | tojson(ensure_ascii=true) "
       "}}\n{{ messages[-1] | tojson(indent=2) }}\n{{ messages[0] | tojson(separators=[',', ':']) }}\n{{ tools | tojson "
       "}}\n{{ [1.5, 2.0, -0.25, 10000000000000000.0, true, none, '<&>'] | tojson }}"},
      // Strings: Python's methods, code point indexing and slicing, str() of containers, `in`, tests
      {"strings",
       "{% for m in messages %}{{ m.content[:3] }}|{{ m.content[-2:] }}|{{ m.content[1] }}|{{ m.content | length }}|{{ "
       "m.content.split() | length }}|{{ m.content.strip() }}|{{ 'x' in m.content }};{% endfor %}\n{{ 'hello world  "
       "foo'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'hello'.replace('l', 'L') }} {{ 'hello' | replace('l', 'L', 1) "
       "}} {{ 'hello wORLD'.title() }} {{ 'hELLO'.capitalize() }} {{ 'user' | title }} {{ '-'.join(['a', 'b']) }}\n{{ "
       "messages[0] }} {{ messages[-1] }} {{ [1, 'a', none, true, 2.5] }} {{ 'role' in messages[0] }} {{ messages[0] "
       "is mapping }} {{ messages is iterable }} {{ messages[0] is iterable }} {{ 'a' is string }} {{ 1 is number }} "
       "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 3 is equalto 3 }} {{ 'abc' < 'abd' }} {{ [1, 2] == [1, 2] }} {{ "
       "messages[0] == messages[0] }} {{ messages[0]['content'].startswith('He') }} {{ 'abc'.endswith('bc') }}"},
      // Loops: a filtered loop counts only the items kept; unpacking pairs; items() and |items
      {"loops",
       "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}{{ ',' if not "
       "loop.last }}{% endfor %}\n{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}\n{% for k, v in "
       "messages[-1] | items %}{{ k }};{% endfor %}\n{% for k in messages[0] %}{{ k }}.{% endfor %}\n{% for c in "
       "'h\xc3\xa9!' %}[{{ c }}]{% endfor %}\n{% for x in undefined_list %}never{% endfor %}\n{% for a, b in messages %}{{ "
       "a }}-{{ b }};{% endfor %}"},
      // Python's integer and float arithmetic: floor division and modulo of negative numbers, floats
      {"arithmetic",
       "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 // -2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 * 3.5 }} "
       "{{ 7 / 2 }} {{ -(3 - 5) }} {{ messages | length * 10 - 1 }} {{ range(messages | length) | list | length }}"},
      // Errors in Jinja too: an attribute of an undefined value, a bad unpack, for over None
      {"undefined-attribute", "{{ nothing.here }}"},
      {"bad-unpack", "{% for a, b, c in messages %}{{ a }}{% endfor %}"},
      {"for-over-none", "{% for a in none %}{{ a }}{% endfor %}"},
  };
  return t;
}

struct Conversation {
  std::string name;
  ojson messages;
};

ojson Msg(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

const std::vector<Conversation>& Conversations() {
  // One call in the shape transformers documents (arguments a mapping) and one in OpenAI's wire
  // shape (arguments a JSON string); ids of nine characters, as Mistral's template requires.
  static const ojson call = {
      {"id", "call12345"},
      {"type", "function"},
      {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}, {"unit", "celsius"}}}}}};
  static const ojson wire_call = {
      {"id", "call67890"},
      {"type", "function"},
      {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Oslo\"}"}}}};
  static const std::vector<Conversation> c = {
      {"hello", ojson::array({Msg("user", "Hello!")})},
      {"system-turns", ojson::array({Msg("system", "Be brief."), Msg("user", "  What is 2+2?  "), Msg("assistant", "4 "),
                                     Msg("user", "And 3+3?\nThanks")})},
      {"turns", ojson::array({Msg("user", "Hi"), Msg("assistant", " Hello. "), Msg("user", "Bye")})},
      {"not-alternating", ojson::array({Msg("user", "a"), Msg("user", "b")})},
      {"unicode", ojson::array({Msg("user", "h\u00e9llo \U0001F600 \"quotes\" {braces} <tag> & 'apostrophe'")})},
      {"tool-call",
       ojson::array({Msg("user", "Weather in Paris?"),
                     {{"role", "assistant"}, {"content", ""}, {"tool_calls", ojson::array({call})}},
                     {{"role", "tool"}, {"tool_call_id", "call12345"}, {"name", "get_weather"},
                      {"content", "{\"temperature\": 22}"}},
                     Msg("assistant", "It is 22 degrees."), Msg("user", "And Oslo?")})},
      {"wire-tool-call",
       ojson::array({Msg("system", "Use tools."), Msg("user", "Weather in Oslo?"),
                     {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", ojson::array({wire_call})}},
                     {{"role", "tool"}, {"tool_call_id", "call67890"}, {"content", "cold"}}})},
  };
  return c;
}

// A tool as the OpenAI API and transformers pass it; keys deliberately not in sorted order.
ojson Tools() {
  return ojson::array({{{"type", "function"},
                        {"function",
                         {{"name", "get_weather"},
                          {"description", "Get the weather in a city."},
                          {"parameters",
                           {{"type", "object"},
                            {"properties", {{"city", {{"type", "string"}, {"description", "City name"}}}}},
                            {"required", {"city"}}}}}}}});
}

// transformers renders each case: a fast tokenizer whose special tokens are the context's BOS and
// EOS, apply_chat_template(messages, tools, chat_template, add_generation_prompt, tokenize=False).
// A case that raises in transformers is null.
constexpr char kRenderPy[] = R"PY(
import json, sys
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
out = []
for c in json.load(open(sys.argv[1])):
    ctx = c["context"]
    vocab = {"<unk>": 0, ctx["bos_token"]: 1, ctx["eos_token"]: 2}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                  bos_token=ctx["bos_token"], eos_token=ctx["eos_token"], unk_token="<unk>")
    try:
        out.append(tok.apply_chat_template(ctx["messages"], tools=ctx["tools"], chat_template=c["template"],
                                           add_generation_prompt=ctx["add_generation_prompt"], tokenize=False))
    except Exception as e:
        out.append(None)
print(json.dumps(out))
)PY";

TEST(ChatTemplate, RendersLikeTransformers) {
  const std::string dir = ::testing::TempDir();
  std::vector<NamedTemplate> templates = PublishedTemplates();
  for (const auto& t : SyntheticTemplates()) templates.push_back(t);
  ojson cases = ojson::array();
  std::vector<std::string> names;
  for (const auto& t : templates)
    for (const auto& m : Conversations())
      for (const bool with_tools : {false, true}) {
        ojson context = {{"messages", m.messages}, {"tools", with_tools ? Tools() : ojson()},
                         {"add_generation_prompt", true}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
        cases.push_back({{"template", t.source}, {"context", context}});
        names.push_back(t.name + " / " + m.name + (with_tools ? " / tools" : ""));
      }
  std::ofstream(dir + "/templates.json") << cases.dump();
  std::ofstream(dir + "/render.py") << kRenderPy;
  const ShellResult rendered = RunShell(std::string(STRATA_VENV_PYTHON) + " " + dir + "/render.py " + dir + "/templates.json");
  ASSERT_EQ(rendered.code, 0) << STRATA_VENV_PYTHON << " with transformers is needed (scripts/python_env.sh): "
                              << rendered.out;
  const json expected = json::parse(rendered.out);
  ASSERT_EQ(expected.size(), cases.size());
  int errors = 0;
  std::set<std::string> rendered_by_transformers;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto t = ChatTemplate::Parse(cases[i]["template"].get<std::string>());
    ASSERT_TRUE(t.ok()) << t.status() << "\n" << names[i];
    auto got = (*t)->RenderOrdered(cases[i]["context"]);
    if (expected[i].is_null()) {
      EXPECT_FALSE(got.ok()) << names[i] << " should fail as in transformers, rendered:\n" << *got;
      ++errors;
    } else {
      rendered_by_transformers.insert(names[i]);
      ASSERT_TRUE(got.ok()) << got.status() << " " << names[i];
      EXPECT_EQ(*got, expected[i].get<std::string>()) << names[i];
    }
  }
  std::printf("%zu template x conversation cases rendered by transformers, %d of them errors in both\n", cases.size(),
              errors);
  // The comparison can fail: the conversation with one character changed, rendered by Strata,
  // differs from transformers' rendering of the original.
  {
    auto t = ChatTemplate::Parse(cases[0]["template"].get<std::string>());
    ASSERT_TRUE(t.ok());
    ojson changed = cases[0]["context"];
    changed["messages"][0]["content"] = changed["messages"][0]["content"].get<std::string>() + "?";
    auto got = (*t)->RenderOrdered(changed);
    ASSERT_TRUE(got.ok() && !expected[0].is_null()) << names[0];
    EXPECT_NE(*got, expected[0].get<std::string>()) << "the negative control rendered the same: " << names[0];
  }
  // The branches that matter must have rendered in transformers, not merely failed in both engines.
  for (const char* must :
       {"Llama-2-chat / system-turns", "TinyLlama-Chat / system-turns", "Llama-3.1-Instruct / system-turns",
        "Llama-3.1-Instruct / tool-call", "Llama-3.1-Instruct / tool-call / tools",
        "Llama-3.1-Instruct / wire-tool-call / tools", "Mistral-v0.1-as-released / turns", "Mixtral-v0.1 / system-turns",
        "Mistral-v0.3 / system-turns", "Mistral-v0.3 / tool-call / tools", "Mistral-v0.3 / wire-tool-call / tools",
        "Qwen2.5-Instruct / system-turns", "Qwen2.5-Instruct / tool-call / tools",
        "Qwen2.5-Instruct / wire-tool-call / tools", "Gemma-2-it / turns", "Gemma-2-it / unicode", "strings / unicode",
        "tojson / unicode / tools", "loops / system-turns", "filters / system-turns"})
    EXPECT_TRUE(rendered_by_transformers.count(must)) << must << " did not render in transformers";
  for (const char* must_fail : {"Gemma-2-it / system-turns", "Llama-2-chat / not-alternating",
                                       "undefined-attribute / hello", "bad-unpack / hello", "for-over-none / hello"})
    EXPECT_FALSE(rendered_by_transformers.count(must_fail)) << must_fail << " rendered in transformers";
}

TEST(ChatTemplate, SortedJsonContextRendersTheSame) {
  // Render takes nlohmann::json (keys sorted); for templates that do not iterate mappings the
  // prompt is the same as with the request's order.
  auto t = ChatTemplate::Parse(PublishedTemplates()[0].source);
  ASSERT_TRUE(t.ok());
  const ojson messages = ojson::array({Msg("user", "Hi"), Msg("assistant", "Yo"), Msg("user", "Bye")});
  auto ordered = (*t)->RenderOrdered({{"messages", messages}, {"bos_token", "<s>"}, {"eos_token", "</s>"}});
  auto sorted = (*t)->Render(json::parse(ojson({{"messages", messages}, {"bos_token", "<s>"}, {"eos_token", "</s>"}})
                                             .dump()));
  ASSERT_TRUE(ordered.ok() && sorted.ok());
  EXPECT_EQ(*ordered, *sorted);
  EXPECT_EQ(*ordered, "<s>[INST] Hi [/INST] Yo </s><s>[INST] Bye [/INST]");
}

TEST(ChatTemplate, UnsupportedSyntaxIsAnErrorNotAGuess) {
  EXPECT_FALSE(ChatTemplate::Parse("{% macro m() %}x{% endmacro %}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{% for m in messages %}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{% for m in messages recursive %}{% endfor %}").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{{ 'unterminated }}").ok());
  const json context = {{"messages", json::array({{{"role", "user"}, {"content", "h\u00e9"}}})}};
  // Render-time refusals, each with a message naming what is missing.
  for (const char* text : {"{{ messages | frobnicate }}", "{{ messages[0].content.upper() }}",
                           "{{ messages[0].content | title }}", "{{ 'a'.zfill(3) }}", "{{ 1 is divisibleby 3 }}",
                           "{{ 'a' < 1 }}", "{{ 1 in 2 }}", "{{ messages | tojson(indent='  ') }}",
                           "{{ messages | map }}", "{{ 'a'.strip('\xc3\xa9') }}"}) {
    auto t = ChatTemplate::Parse(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status();
    auto r = (*t)->Render(context);
    if (r.ok()) {
      ADD_FAILURE() << text << " rendered " << *r;
    } else {
      EXPECT_NE(r.status().message().find("chat template: "), std::string::npos) << r.status();
    }
  }
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
      // Strings cut inside a UTF-8 sequence and odd slices stay in bounds.
      {"{{ '\xc3'[0] }}{{ '\xe2\x82'[-1:] }}{{ 'ab'[5:1] }}{{ 'ab'[-9:] }}", true},
      {"{{ messages[0] | tojson(separators=[1, 2]) }}", false},
      {"{{ 'abc'.replace('', '-') }}{{ 'abc' | replace('', '-', 2) }}", true},
  };
  for (const auto& [text, renders] : cases) {
    auto t = ChatTemplate::Parse(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status();
    EXPECT_EQ((*t)->Render(context).ok(), renders) << text;
  }
}

}  // namespace
}  // namespace strata::testing
