"""Valid samples the fuzzers start from and mutate: one or more per format each parser reads."""

from __future__ import annotations

ST_CHAT_HEADER = {
    "user_name": "Alice", "character_name": "Seraphina", "create_date": "2024-05-12@18h31m02s",
    "chat_metadata": {"note_prompt": "Keep it gentle.", "note_depth": 2},
}  # fmt: skip
ST_CHAT_LINES = [
    {"name": "Seraphina", "is_user": False, "send_date": "May 12, 2024 6:31pm", "mes": "Welcome.", "extra": {},
     "swipe_id": 1, "swipes": ["Greetings.", "Welcome."],
     "swipe_info": [{"send_date": "May 12, 2024 6:31pm", "extra": {}}, {"send_date": 1715539000000, "extra": {}}]},
    {"name": "Alice", "is_user": True, "send_date": "2024-05-12T18:33:00.000Z", "mes": "Where am I?", "extra": {}},
    {"name": "System", "is_system": True, "send_date": "1715539000", "mes": "Quiet.", "extra": {"type": "narrator"}},
]  # fmt: skip
TGW_CHAT = {
    "internal": [["<|BEGIN-VISIBLE-CHAT|>", "Hi! I'm Tavi."], ["What's 2 < 3?", "True."], ["Bye", ""]],
    "visible": [["", "Hi! I&#x27;m Tavi."], ["What&#x27;s 2 &lt; 3?", "True."], ["Bye", ""]],
    "metadata": {"assistant_1": {"timestamp": "2025-01-02T03:04:05", "current_version_index": 1,
                                 "versions": [{"content": "Yes."}, {"content": "True."}]}},
}  # fmt: skip

SILLYTAVERN_PRESET = {
    "temp": 1.1, "temperature_last": True, "top_p": 0.95, "top_k": 0, "top_a": 0, "tfs": 1, "typical_p": 1,
    "min_p": 0.05, "rep_pen": 1.05, "rep_pen_range": 1024, "freq_pen": 0.1, "presence_pen": 0.2,
    "do_sample": True, "dynatemp": True, "min_temp": 0.5, "max_temp": 1.5, "dynatemp_exponent": 1,
    "dry_allowed_length": 2, "dry_multiplier": 0.8, "dry_base": 1.75, "dry_sequence_breakers": '["\\n", ":"]',
    "ban_eos_token": False, "mirostat_mode": 0, "mirostat_tau": 5, "mirostat_eta": 0.1,
    "banned_tokens": '"a ban"\n[12, 34]\nplain', "sampler_priority": ["temperature", "top_k"],
    "samplers": ["dry", "top_k", "typical_p", "top_p", "min_p", "xtc", "temperature"],
    "sampler_order": [6, 0, 1, 3, 4, 2, 5], "logit_bias": [{"text": "[5]", "value": -5}, {"text": "no", "value": 2}],
    "xtc_threshold": 0.1, "xtc_probability": 0.5, "nsigma": 0, "seed": -1,
}  # fmt: skip
TGW_PRESET = {
    "temperature": 0.98, "top_p": 0.37, "top_k": 100, "repetition_penalty": 1.18, "repetition_penalty_range": 0,
    "min_p": 0.02, "typical_p": 0.9, "top_n_sigma": 0, "dry_multiplier": 0.8, "dry_sequence_breakers": '"\\n", ":"',
    "dynamic_temperature": True, "dynatemp_low": 0.6, "dynatemp_high": 1.4, "dynatemp_exponent": 1.5,
    "tfs": 0.9, "sampler_priority": "temperature\ntop_k\ntop_p", "ban_eos_token": True, "custom_token_bans": "12, 34",
}  # fmt: skip
KOBOLD_PRESET = {
    "temperature": 0.7, "rep_pen": 1.1, "rep_pen_range": 320, "rep_pen_slope": 0.7, "top_p": 0.92, "top_k": 100,
    "typical": 1, "tfs": 1, "min_p": 0.05, "sampler_order": [6, 0, 1, 3, 4, 2, 5], "mirostat": 0,
    "use_default_badwordsids": True, "dry_sequence_breakers": ["\n", ":"], "banned_tokens": ["whisper"],
    "logit_bias": {"50": -3}, "sampler_seed": 77, "max_length": 200, "stop_sequence": ["\nYou:"],
}  # fmt: skip
KOBOLD_LITE_PRESET = {"temperature": 0.8, "rep_pen": 1.07, "typ_s": 0.9, "tfs_s": 0.95, "miro_type": 2, "miro_tau": 4}

WORLD_INFO = {
    "entries": {
        "0": {"uid": 0, "key": ["glade"], "keysecondary": ["night"], "content": "@@depth 2\nThe glade.",
              "comment": "Glade", "constant": False, "selective": True, "selectiveLogic": 3, "order": 100,
              "position": 4, "disable": False, "depth": 4, "role": 1, "probability": 50, "useProbability": True,
              "caseSensitive": None, "matchWholeWords": True, "scanDepth": 2},
        "1": {"uid": 1, "key": ["/dr(a|e)gon/i"], "content": "Dragons.", "constant": True, "position": 0},
    },
}  # fmt: skip
CARD_BOOK = {
    "name": "Eldoria", "scan_depth": 3, "token_budget": 200, "recursive_scanning": True, "extensions": {},
    "entries": [
        {"id": 0, "keys": ["glade", "clearing"], "secondary_keys": ["x"], "content": "Old magic.", "enabled": True,
         "insertion_order": 100, "position": "after_char", "use_regex": True, "constant": False, "selective": True,
         "extensions": {"position": 4, "depth": 2, "selectiveLogic": 1, "role": 2, "probability": 100}},
        {"keys": ["^lute$"], "content": "@@activate\nHer lute.", "enabled": True, "insertion_order": 1, "id": "a-1"},
    ],
}  # fmt: skip
LOREBOOK_V3 = {"spec": "lorebook_v3", "data": CARD_BOOK}

ST_INSTRUCT = {
    "name": "ChatML", "input_sequence": "<|im_start|>user", "output_sequence": "<|im_start|>assistant",
    "system_sequence": "<|im_start|>system", "input_suffix": "<|im_end|>\n", "output_suffix": "<|im_end|>\n",
    "system_suffix": "<|im_end|>\n", "stop_sequence": "<|im_end|>", "wrap": True, "system_same_as_user": False,
}  # fmt: skip
OUR_TEMPLATE = {
    "id": "mine", "name": "Mine", "system_prefix": "<s>", "user_prefix": "[INST] ", "user_suffix": " [/INST]",
    "assistant_suffix": "</s>", "stop": ["</s>"], "system_role": False,
}  # fmt: skip
JINJA_TEMPLATES = [
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate') }}{% endif %}{% if message['role'] == 'user' %}"
    "[INST] {{ message['content'] }} [/INST]{% elif message['role'] == 'assistant' %}{{ message['content'] }}"
    "{{ eos_token }}{% endif %}{% endfor %}",
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ (first if loop.first else '') + message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
]
