// File: runtime/grammar/json_schema_grammar.h
// JSON schema (OpenAI `response_format: json_schema`, vLLM `guided_json`) and "any JSON object"
// (`response_format: json_object`) as grammars.
//
// Output: JSON text with optional whitespace `[ \n\t]{0,max_whitespace}` between tokens and at
// both ends. Everything is bounded so that even a random model can always finish:
//   - strings: `"` (any code point but `"`, `\`, U+0000-U+001F | `\` ["\/bfnrt] | `\u` 4 hex) `"`;
//   - numbers: integer part `-?(0|[1-9][0-9]{0,18})` (at most 19 digits), fraction
//     `.[0-9]{1,16}`, exponent `[eE][+-]?[0-9]{1,3}`;
//   - bounded numbers (`number` with minimum/maximum...) are written without exponent and with a
//     fraction that ends in a non-zero digit, except a lone `minimum: 0` / `exclusiveMinimum: 0`.
//
// Supported keywords:
//   - `type`: a string or an array of "object", "array", "string", "integer", "number",
//     "boolean", "null". Without `type`, the type comes from the keywords present (`properties`
//     means object, `items` array, `pattern` string, `minimum` number, ...); with none, any value.
//     Keywords for a type that `type` leaves out are ignored (JSON schema's own rule).
//   - objects: `properties` (emitted in the schema's order: pass an nlohmann::ordered_json to keep
//     it; nlohmann::json sorts keys), `required` (always present; the others may be left out),
//     `additionalProperties`: false, true or a schema. When absent, additional properties are NOT
//     allowed (OpenAI strict mode, xgrammar's default); when allowed they come after the declared
//     ones and their keys are any string (a key may repeat a declared one: not checked).
//     A required key missing from `properties` takes the `additionalProperties` schema.
//   - arrays: `items` (a schema, or false), `prefixItems`, `minItems`, `maxItems`.
//   - `enum`, `const`: any JSON values, written as their compact serialization (`dump()`); with a
//     `type` beside them, the values of other types are dropped.
//   - `anyOf`, `oneOf` (as anyOf: exclusivity is not enforced), `allOf` with exactly one subschema.
//   - `$ref` to `#`, `#/$defs/NAME`, `#/definitions/NAME` or any other local JSON pointer `#/...`;
//     recursion is allowed (one grammar rule per referenced schema), except a cycle of references
//     that reads no input (left recursion). Unreferenced `$defs` are not checked.
//   - strings: `pattern` (see regex_grammar.h; a whole match, where JSON schema searches: a
//     subset of the valid strings), `minLength`/`maxLength` (in code points; an escape counts as
//     one), `format`: "date" (YYYY-MM-DD), "time" (HH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)),
//     "date-time" (date T time), "uuid" (8-4-4-4-12 hex), "email" (dot-atoms @ domain labels with
//     a dot). Other formats are errors. `pattern`, `format` and lengths do not combine.
//   - integers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers; draft-4
//     boolean exclusives also work), exact: a grammar of the decimal digit strings in the range.
//   - numbers: the same bounds. Integral bounds are exact for the exponent-free form; others are
//     rounded inward (the grammar emits a subset of the valid numbers); an empty subset is an error.
//   - boolean schemas `true`/`false`; `{}` is any JSON value.
//   - annotations, ignored: title, description, default, examples, $schema, $id, $comment,
//     deprecated, readOnly, writeOnly, strict; `$defs`/`definitions` hold schemas for `$ref`.
// Anything else (`not`, `if`, `patternProperties`, `uniqueItems`, `minProperties`, `multipleOf`,
// `dependentRequired`, `contains`, `propertyNames`, unknown words...) is an InvalidArgumentError
// naming the keyword and its JSON pointer: `unsupported JSON schema keyword "uniqueItems" at
// /properties/tags` (the root is "/"). So are malformed schemas and schemas nested deeper than
// 64 levels. Counts (`minItems`, `maxItems`, `minLength`, `maxLength`) are at most 10000, and
// `prefixItems` holds at most 1000 schemas.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "runtime/grammar/grammar.h"

namespace strata::grammar {

struct JsonSchemaOptions {
  // Whitespace allowed between JSON tokens: [ \n\t]{0,max_whitespace}; -1: unbounded (a model
  // that never stops writing spaces then never finishes).
  int max_whitespace = 20;
};

// The grammar of the JSON texts that `schema` accepts (within the limits above).
absl::StatusOr<Grammar> JsonSchemaToGrammar(const nlohmann::ordered_json& schema, const JsonSchemaOptions& o = {});
// The same; nlohmann::json keeps object keys sorted, so properties come out in key order.
absl::StatusOr<Grammar> JsonSchemaToGrammar(const nlohmann::json& schema, const JsonSchemaOptions& o = {});

// Any JSON object at the top level (OpenAI's `{"type": "json_object"}`), values nested freely.
Grammar AnyJsonGrammar(const JsonSchemaOptions& o = {});

}  // namespace strata::grammar
