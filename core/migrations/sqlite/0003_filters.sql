-- The two-context prompt filter: moderator-managed regexes. Types 10 (underage, replaceable) and
-- 11 (underage) form the "underage" context, type 20 the "lewd" one. Shipped with a default set.
CREATE TABLE filters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    regex TEXT NOT NULL,
    filter_type BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    replacement TEXT NOT NULL DEFAULT '',
    user_id BIGINT NOT NULL DEFAULT 0
);

INSERT INTO filters (regex, filter_type, description, replacement) VALUES
('\b(child|children|kid|kids|kiddo|minor|minors|underage|under-age|preteen|pre-teen|prepubescent|pubescent)\b', 10, 'children (generic)', 'adult'),
('\b(baby|babies|infant|infants|toddler|toddlers|newborn)\b', 10, 'babies', 'adult'),
('\b(little|young|small|tiny) (girl|girls|daughter|daughters)\b', 10, 'young girls', 'adult woman'),
('\b(little|young|small|tiny) (boy|boys|son|sons)\b', 10, 'young boys', 'adult man'),
('\b(schoolgirl|schoolgirls|school girl|school girls|loli|lolis|lolicon|lolita)\b', 10, 'schoolgirls and lolicon', 'adult woman'),
('\b(schoolboy|schoolboys|school boy|school boys|shota|shotas|shotacon)\b', 10, 'schoolboys and shotacon', 'adult man'),
('\b([1-9]|1[0-7]) ?(yo|y o|years? old|year-old|years-old)\b', 11, 'ages under 18', ''),
('\b(elementary school|middle school|kindergarten|grade school|primary school)\b', 11, 'school ages', ''),
('\b(nude|nudes|naked|nudity|nsfw|porn|porno|pornographic|sex|sexual|sexy|erotic|erotica|lewd|hentai|xxx)\b', 20, 'explicit words', ''),
('\b(topless|bottomless|undressed|undressing|lingerie|bikini|panties|underwear|bra)\b', 20, 'undress', ''),
('\b(breast|breasts|boobs|nipple|nipples|genital|genitals|penis|vagina|pussy|cock|ass|butt|crotch)\b', 20, 'body parts', ''),
('\b(seductive|provocative|spread legs|orgasm|masturbat\w*|intercourse|fellatio|cum)\b', 20, 'sexual acts', '');
