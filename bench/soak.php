<?php
// bench/soak.php — one hosting account's web application during the soak
// (bench/soak.sh): calls PHP's mail() (sendmail_path is set by the caller)
// until DEADLINE, with exponential pauses of mean 1/RATE seconds, and logs
// every call, one line per mail():
//     TOKEN OK T0 T1
// TOKEN is unique (ACCOUNT.SEQ) and travels in the Subject ("soak TOKEN")
// and in an X-Soak-Token header, so the soak can find the message in the
// queue and at the smarthost; OK is 1 when mail() returned true; T0 and T1
// are the epoch times around the call.
//
// Usage: php soak.php ACCOUNT LOGFILE DEADLINE_EPOCH RATE

if ($argc !== 5) {
    fwrite(STDERR, "usage: php soak.php ACCOUNT LOGFILE DEADLINE_EPOCH RATE\n");
    exit(64);
}
[, $account, $logfile, $deadline, $rate] = $argv;
$deadline = (float) $deadline;
$rate = (float) $rate;
$log = fopen($logfile, 'a');
if ($log === false || $rate <= 0) {
    fwrite(STDERR, "soak.php: cannot open $logfile or bad rate\n");
    exit(73);
}
mt_srand(crc32($account) ^ getmypid());
$seq = 0;
while (microtime(true) < $deadline) {
    $seq++;
    $token = sprintf('%s.%06d', $account, $seq);
    // Mostly contact-form sized; 3 % are ~60 KB (an order with an invoice
    // inlined), so long messages are on the wire when relayd is killed too.
    $body = str_repeat("Soak message $token: a line of a contact form.\n", mt_rand(1, 40));
    if (mt_rand(1, 100) <= 3) {
        $body .= str_repeat(str_repeat('x', 76) . "\n", 800);
    }
    $t0 = microtime(true);
    $ok = mail(
        "rcpt.$seq@soak.example.org",
        "soak $token",
        $body,
        "X-Soak-Token: $token\r\nFrom: Soak <$account@soak.example.net>"
    );
    $t1 = microtime(true);
    fwrite($log, sprintf("%s %d %.6f %.6f\n", $token, $ok ? 1 : 0, $t0, $t1));
    fflush($log);
    $u = mt_rand(1, mt_getrandmax()) / mt_getrandmax();
    $pause = -log($u) / $rate;
    $left = $deadline - microtime(true);
    if ($left <= 0) {
        break;
    }
    usleep((int) (min($pause, $left) * 1e6));
}
fclose($log);
